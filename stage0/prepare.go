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
	// Net are the pod's networks and ports (stage0/net.go).
	Net NetOptions
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
		m.Apps = append(m.Apps, *app)
		used = append(used, img)
	}
	if m.Net, err = e.resolveNet(st, used, o.Net); err != nil {
		return nil, nil, err
	}
	if err := m.Validate(); err != nil {
		return nil, nil, err
	}

	pods, err := e.Pods()
	if err != nil {
		return nil, nil, err
	}
	pd, err := pods.Create()
	if err != nil {
		return nil, nil, err
	}
	m.UUID = pd.UUID
	m.Hostname = o.Hostname
	if m.Hostname == "" {
		m.Hostname = "orbit-" + pd.UUID[:8]
	}
	if err := e.writePod(pd, m); err != nil {
		if rerr := pd.Remove(); rerr != nil {
			err = fmt.Errorf("%w (and %v)", err, rerr)
		}
		return nil, nil, err
	}
	for _, img := range used {
		_ = st.Touch(img.ID) // last-used is advisory
	}
	return pd, m, nil
}

func (e *Env) writePod(pd *state.Pod, m *pod.Manifest) error {
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
	if err := pd.Transition(state.Prepare); err != nil {
		return err
	}
	for _, a := range m.Apps {
		for _, d := range []string{pd.Dir().Upper(a.Name), pd.Dir().Work(a.Name), pd.Dir().Rootfs(a.Name)} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return fmt.Errorf("app %s: %w", a.Name, err)
			}
		}
	}
	return pd.Transition(state.Prepared)
}

// app makes one app of the pod from its image and options.
func (e *Env) app(st *store.Store, img *store.Image, o AppOptions, podEnv []string, others []pod.App) (*pod.App, error) {
	raw, err := st.ReadBlob(img.Config)
	if err != nil {
		return nil, err
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("config %s: %w", img.Config, err)
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
	for _, l := range img.Layers {
		if !st.HasLayer(l.ChainID) {
			return nil, fmt.Errorf("layer %s is missing from the store (fetch the image again)", l.ChainID)
		}
		a.Layers = append(a.Layers, st.LayerPath(l.ChainID))
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
		env = append(env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
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
