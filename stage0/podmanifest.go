package stage0

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"time"

	"github.com/orbit-pods/orbit/image/store"
	"github.com/orbit-pods/orbit/pod"
	"github.com/orbit-pods/orbit/pod/state"
)

// ManifestOptions are what `orbit run --pod-manifest=FILE` takes from its
// command line besides the file.
type ManifestOptions struct {
	Stage1Name, Stage1Path string
	// Interactive and NoOverlay, when set, override the file's.
	Interactive, NoOverlay bool
}

// PrepareManifest makes a pod from a pod manifest file (the format of
// pod.json, docs/pod-manifest.md) instead of images and flags. Each app's
// image is looked up in the store by its ID, else its name; stage0 then
// fills in what the file leaves to the image (layers, command,
// environment, user, working directory) and checks users and executables
// as Prepare does. The pod is returned locked; on error nothing is left.
func (e *Env) PrepareManifest(ctx context.Context, file string, o ManifestOptions) (*state.Pod, *pod.Manifest, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, nil, fmt.Errorf("pod manifest: %w", err)
	}
	var m pod.Manifest
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields() // a misspelt field would otherwise be silently ignored
	if err := dec.Decode(&m); err != nil {
		return nil, nil, fmt.Errorf("pod manifest %s: %w", file, err)
	}
	if m.Kind == "" {
		m.Kind = pod.ManifestKind
	}
	if m.Version == 0 {
		m.Version = pod.ManifestVersion
	}
	if m.UUID != "" || m.Stage1 != "" {
		return nil, nil, fmt.Errorf("pod manifest %s: uuid and stage1 are chosen by orbit, not the file", file)
	}
	name := m.Flavor
	if o.Stage1Name != "" {
		name = o.Stage1Name
	}
	if m.Stage1, err = e.Stage1(name, o.Stage1Path); err != nil {
		return nil, nil, err
	}
	m.Flavor = flavor(name)
	m.Created = time.Now().UTC()
	if m.StopTimeout <= 0 {
		m.StopTimeout = pod.Duration(DefaultStopTimeout)
	}
	m.Interactive = m.Interactive || o.Interactive
	st, err := e.Store()
	if err != nil {
		return nil, nil, err
	}
	var used []*store.Image
	for i := range m.Apps {
		a := &m.Apps[i]
		a.NoOverlay = a.NoOverlay || o.NoOverlay
		img, err := completeApp(st, a)
		if err != nil {
			return nil, nil, fmt.Errorf("pod manifest %s: app %q: %w", file, a.Name, err)
		}
		used = append(used, img)
	}
	pd, err := e.createPod(ctx, st, &m, used)
	if err != nil {
		return nil, nil, err
	}
	return pd, &m, nil
}

// completeApp resolves an app's image in the store and fills in from it
// what the manifest leaves out.
func completeApp(st *store.Store, a *pod.App) (*store.Image, error) {
	ref := a.Image.ID.String()
	if ref == "" {
		ref = a.Image.Name
	}
	if ref == "" {
		return nil, fmt.Errorf("no image: give image.name or image.id")
	}
	img, err := st.Resolve(ref)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", ref, err)
	}
	if a.Image.ID != "" && a.Image.Name != "" && img.ID != a.Image.ID {
		return nil, fmt.Errorf("image %s has ID %s, not %s", a.Image.Name, img.ID, a.Image.ID)
	}
	a.Image.ID = img.ID
	if a.Image.Name == "" && len(img.Names) > 0 {
		a.Image.Name = img.Names[0]
	}
	cfg, err := imageConfig(st, img)
	if err != nil {
		return nil, err
	}
	if len(a.Layers) > 0 {
		return nil, fmt.Errorf("layers come from the image, the file must not list them")
	}
	if a.Layers, err = imageLayers(st, img); err != nil {
		return nil, err
	}
	p := &a.Process
	if len(p.Args) == 0 {
		p.Args = append(append([]string(nil), cfg.Config.Entrypoint...), cfg.Config.Cmd...)
		if len(p.Args) == 0 {
			return nil, fmt.Errorf("the image has no entrypoint or cmd: give process.args")
		}
	}
	env := cfg.Config.Env
	if !hasEnv(env, "PATH") {
		env = append(env, defaultPath)
	}
	env = mergeEnv(env, p.Env...)
	p.Env = mergeEnv(env, "AC_APP_NAME="+a.Name)
	// A user given by name (or "uid:gid", "name:group") is resolved in the
	// image; no user at all is the image's.
	if p.User.Username != "" || (p.User.UID == 0 && p.User.GID == 0 && len(p.User.AdditionalGids) == 0) {
		u := p.User.Username
		if u == "" {
			u = cfg.Config.User
		}
		if p.User, err = resolveUser(a.Layers, u, ""); err != nil {
			return nil, err
		}
	}
	if p.Cwd == "" {
		p.Cwd = cfg.Config.WorkingDir
	}
	if p.Cwd == "" {
		p.Cwd = "/"
	}
	if !path.IsAbs(p.Cwd) {
		return nil, fmt.Errorf("process.cwd %q is not an absolute path", p.Cwd)
	}
	if err := checkExec(a.Layers, p.Args[0], p.Env); err != nil {
		return nil, err
	}
	return img, nil
}
