package stage0

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"strings"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/orbit-pods/orbit/image/store"
	"github.com/orbit-pods/orbit/internal/faultpoint"
	"github.com/orbit-pods/orbit/metadata"
	"github.com/orbit-pods/orbit/pod"
	"github.com/orbit-pods/orbit/pod/state"
)

// AppOptions are one app of `orbit run`: an image and what to change in
// its defaults.
type AppOptions struct {
	Image string
	// Name overrides the app name derived from the image name.
	Name string
	// Exec replaces the image's entrypoint; Args replace its cmd.
	Exec    string
	Args    []string
	HasArgs bool
	User    string
	Group   string
	// WorkingDir replaces the image's working directory.
	WorkingDir string
	Mounts     []pod.MountPoint
	// Memory is a limit in bytes; CPUQuota/CPUPeriod a CFS limit.
	Memory         int64
	CPUQuota       int64
	CPUPeriod      uint64
	CapsRetain     []string
	CapsRemove     []string
	ReadOnlyRootfs bool
	// Seccomp replaces the default filter (pod.DefaultSeccomp).
	Seccomp *specs.LinuxSeccomp
}

// PrepareOptions are everything that makes a pod.
type PrepareOptions struct {
	Apps        []AppOptions
	Hostname    string
	StopTimeout time.Duration
	Stage1Name  string
	Stage1Path  string
	// Env is set in every app over the image's environment (from
	// --inherit-env, --set-env-file and --set-env, in that order).
	Env          []string
	Volumes      []pod.Volume
	DNS          *pod.DNS
	HostsEntries []pod.HostsEntry
	// NoSeccomp runs every app without a seccomp filter
	// (--insecure-options=seccomp).
	NoSeccomp bool
	// Interactive gives the pod's one app orbit's stdin (and a terminal
	// when stdin is one).
	Interactive bool
	// NoOverlay copies each app's image into its rootfs directory
	// instead of mounting an overlay of its layers.
	NoOverlay bool
	// Net are the pod's networks and ports (stage0/net.go).
	Net NetOptions
	// Log, when set, is every app's log rotation (--log-max-size,
	// --log-max-files).
	Log *pod.AppLog
	// MDSRegister registers the pod with the metadata service listening
	// at MDSSocket (metadata.DefaultSocket when empty).
	MDSRegister bool
	MDSSocket   string
	// UserNamespace, when set, runs the pod in a user namespace with
	// these mappings (--private-users).
	UserNamespace *pod.UserNamespace
}

// DefaultStopTimeout is how long a pod's apps get to exit after SIGTERM.
const DefaultStopTimeout = 10 * time.Second

// Prepare resolves the images and the apps, checks everything it can, and
// only then makes the pod: a directory in the prepared state with pod.json
// and the apps' directories. The pod is returned locked. On any error no
// pod directory is left behind.
func (e *Env) Prepare(ctx context.Context, o PrepareOptions) (*state.Pod, *pod.Manifest, error) {
	if len(o.Apps) == 0 {
		return nil, nil, fmt.Errorf("no image given")
	}
	stage1, err := e.Stage1(o.Stage1Name, o.Stage1Path)
	if err != nil {
		return nil, nil, err
	}
	st, err := e.Store()
	if err != nil {
		return nil, nil, err
	}
	m := &pod.Manifest{
		Kind:         pod.ManifestKind,
		Version:      pod.ManifestVersion,
		Created:      time.Now().UTC(),
		Stage1:       stage1,
		StopTimeout:  pod.Duration(o.StopTimeout),
		Volumes:      o.Volumes,
		DNS:          o.DNS,
		HostsEntries: o.HostsEntries,
		Flavor:       flavor(o.Stage1Name),
		Interactive:  o.Interactive,
	}
	if o.StopTimeout <= 0 {
		m.StopTimeout = pod.Duration(DefaultStopTimeout)
	}
	var used []*store.Image
	for _, ao := range o.Apps {
		img, err := ResolveImage(ctx, st, ao.Image)
		if err != nil {
			return nil, nil, err
		}
		if o.NoSeccomp {
			ao.Seccomp = &specs.LinuxSeccomp{}
		}
		app, err := e.app(st, img, ao, o.Env, m.Apps)
		if err != nil {
			return nil, nil, fmt.Errorf("image %s: %w", ao.Image, err)
		}
		app.NoOverlay = o.NoOverlay
		if o.Log != nil {
			l := *o.Log
			app.Log = &l
		}
		m.Apps = append(m.Apps, *app)
		used = append(used, img)
	}
	if m.Net, err = e.resolveNet(st, used, o.Net); err != nil {
		return nil, nil, err
	}
	if o.MDSRegister {
		sock := o.MDSSocket
		if sock == "" {
			sock = metadata.DefaultSocket
		}
		if err := checkMetadataService(ctx, sock); err != nil {
			return nil, nil, err
		}
		m.MetadataService = &pod.MetadataService{Socket: sock}
	}
	m.Hostname = o.Hostname
	m.UserNamespace = o.UserNamespace
	pd, err := e.createPod(ctx, st, m, used)
	if err != nil {
		return nil, nil, err
	}
	return pd, m, nil
}

// createPod makes the pod directory of a complete manifest, whose apps
// were made from the images used (in the same order); it gives the pod
// its UUID and, if it has none, its hostname. On error nothing is left.
func (e *Env) createPod(ctx context.Context, st *store.Store, m *pod.Manifest, used []*store.Image) (*state.Pod, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	pods, err := e.Pods()
	if err != nil {
		return nil, err
	}
	pd, err := pods.Create()
	if err != nil {
		return nil, err
	}
	faultpoint.Hit("prepare.pod-created")
	m.UUID = pd.UUID
	if m.Hostname == "" {
		m.Hostname = "orbit-" + pd.UUID[:8]
	}
	if err := e.writePod(ctx, st, pd, m, used); err != nil {
		if rerr := pd.Remove(); rerr != nil {
			err = fmt.Errorf("%w (and %v)", err, rerr)
		}
		return nil, err
	}
	for _, img := range used {
		_ = st.Touch(img.ID) // last-used is advisory
	}
	return pd, nil
}

func (e *Env) writePod(ctx context.Context, st *store.Store, pd *state.Pod, m *pod.Manifest, used []*store.Image) error {
	if err := m.Validate(); err != nil {
		return err
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(pd.Dir().ManifestFile(), b, 0o644); err != nil {
		return fmt.Errorf("write pod manifest: %w", err)
	}
	faultpoint.Hit("prepare.manifest-written")
	if m.MetadataService != nil {
		if err := writeMDSRegistration(st, pd.Dir(), m, used); err != nil {
			return err
		}
	}
	if err := pd.Transition(state.Prepare); err != nil {
		return err
	}
	for i, a := range m.Apps {
		if a.NoOverlay {
			// The app's root is its own copy of the image, for data
			// directories on filesystems that cannot host an overlay.
			if err := st.Render(ctx, used[i], pd.Dir().Rootfs(a.Name)); err != nil {
				return fmt.Errorf("app %s: copy its image: %w", a.Name, err)
			}
			continue
		}
		for _, d := range []string{pd.Dir().Upper(a.Name), pd.Dir().Work(a.Name), pd.Dir().Rootfs(a.Name)} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return fmt.Errorf("app %s: %w", a.Name, err)
			}
		}
	}
	faultpoint.Hit("prepare.apps-made")
	return pd.Transition(state.Prepared)
}

// app makes one app of the pod from its image and options.
func (e *Env) app(st *store.Store, img *store.Image, o AppOptions, podEnv []string, others []pod.App) (*pod.App, error) {
	cfg, err := imageConfig(st, img)
	if err != nil {
		return nil, err
	}
	a := &pod.App{Name: o.Name, Image: pod.ImageRef{ID: img.ID}}
	if len(img.Names) > 0 {
		a.Image.Name = img.Names[0]
	}
	if a.Name == "" {
		a.Name = appName(a.Image.Name, others)
	}
	if !pod.ValidAppName(a.Name) {
		return nil, fmt.Errorf("invalid app name %q (lower case letters, digits, '-' and '.')", a.Name)
	}
	for _, x := range others {
		if x.Name == a.Name {
			return nil, fmt.Errorf("app name %q used twice in the pod (give --name)", a.Name)
		}
	}
	if a.Layers, err = imageLayers(st, img); err != nil {
		return nil, err
	}

	args := append(append([]string(nil), cfg.Config.Entrypoint...), cfg.Config.Cmd...)
	switch {
	case o.Exec != "":
		args = append([]string{o.Exec}, o.Args...)
	case o.HasArgs:
		args = append(append([]string(nil), cfg.Config.Entrypoint...), o.Args...)
	}
	if len(args) == 0 {
		return nil, fmt.Errorf("the image has no entrypoint or cmd: give --exec")
	}
	u := cfg.Config.User
	if o.User != "" {
		u = o.User
	}
	user, err := resolveUser(a.Layers, u, o.Group)
	if err != nil {
		return nil, err
	}
	env := cfg.Config.Env
	if !hasEnv(env, "PATH") {
		env = append(env, defaultPath)
	}
	env = mergeEnv(env, podEnv...)
	env = mergeEnv(env, "AC_APP_NAME="+a.Name)
	a.Process = specs.Process{
		Args:         args,
		Env:          env,
		Cwd:          cfg.Config.WorkingDir,
		User:         user,
		Capabilities: capsFor(o.CapsRetain, o.CapsRemove, pod.DefaultCapabilities),
	}
	if o.WorkingDir != "" {
		if !path.IsAbs(o.WorkingDir) {
			return nil, fmt.Errorf("--working-dir %q is not an absolute path", o.WorkingDir)
		}
		a.Process.Cwd = o.WorkingDir
	}
	if a.Process.Cwd == "" {
		a.Process.Cwd = "/"
	}
	a.Mounts = o.Mounts
	a.ReadOnlyRootfs = o.ReadOnlyRootfs
	a.Seccomp = o.Seccomp
	if a.PreStart, a.PostStop, err = appcHandlers(st, img); err != nil {
		return nil, err
	}
	if o.Memory > 0 || o.CPUQuota > 0 {
		a.Resources = &specs.LinuxResources{}
		if o.Memory > 0 {
			a.Resources.Memory = &specs.LinuxMemory{Limit: &o.Memory}
		}
		if o.CPUQuota > 0 {
			a.Resources.CPU = &specs.LinuxCPU{Quota: &o.CPUQuota, Period: &o.CPUPeriod}
		}
	}
	if err := checkExec(a.Layers, a.Process.Args[0], env); err != nil {
		return nil, err
	}
	return a, nil
}

// imageConfig reads an image's OCI config.
func imageConfig(st *store.Store, img *store.Image) (*ocispec.Image, error) {
	raw, err := st.ReadBlob(img.Config)
	if err != nil {
		return nil, err
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("config %s: %w", img.Config, err)
	}
	return &cfg, nil
}

// imageLayers are the directories of an image's extracted layers, lowest
// first.
func imageLayers(st *store.Store, img *store.Image) ([]string, error) {
	var out []string
	for _, l := range img.Layers {
		if !st.HasLayer(l.ChainID) {
			return nil, fmt.Errorf("layer %s is missing from the store (fetch the image again)", l.ChainID)
		}
		out = append(out, st.LayerPath(l.ChainID))
	}
	return out, nil
}

// defaultPath is the PATH of an image that sets none.
const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

func hasEnv(env []string, k string) bool {
	for _, e := range env {
		if strings.HasPrefix(e, k+"=") {
			return true
		}
	}
	return false
}

// appName derives an app name from an image name: its last path component
// without tag, made valid, and numbered if the pod has it already.
func appName(image string, others []pod.App) string {
	n := path.Base(image)
	if i := strings.IndexAny(n, ":@"); i >= 0 {
		n = n[:i]
	}
	n = strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '.':
			return r
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		}
		return '-'
	}, n)
	n = strings.Trim(n, "-.")
	if n == "" {
		n = "app"
	}
	name := n
	for i := 2; ; i++ {
		taken := false
		for _, o := range others {
			taken = taken || o.Name == name
		}
		if !taken {
			return name
		}
		name = fmt.Sprintf("%s-%d", n, i)
	}
}

// checkExec makes sure the app's executable is in its image, so a typo
// fails before a pod is made. A relative name is looked up in PATH.
func checkExec(layers []string, exe string, env []string) error {
	candidates := []string{exe}
	if !strings.Contains(exe, "/") {
		candidates = nil
		for _, e := range env {
			if p, ok := strings.CutPrefix(e, "PATH="); ok {
				for _, d := range strings.Split(p, ":") {
					candidates = append(candidates, path.Join(d, exe))
				}
			}
		}
	} else if !path.IsAbs(exe) {
		return nil // relative to the working directory: leave it to run time
	}
	for _, c := range candidates {
		if existsInLayers(layers, c) {
			return nil
		}
	}
	return fmt.Errorf("executable %q is not in the image", exe)
}

// flavor is the manifest's stage1 flavor for a --stage1-name: the name of
// a stage1.d entry is the flavor it runs.
func flavor(stage1Name string) string {
	if stage1Name == pod.FlavorDefault {
		return ""
	}
	return stage1Name
}
