package stage0

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/orbit-pods/orbit/image/store"
	"github.com/orbit-pods/orbit/pod"
	"github.com/orbit-pods/orbit/pod/state"
)

// SandboxOptions make a sandbox pod: one that runs with no apps of its own
// and takes apps while it runs (`orbit app`, orbit-cri).
type SandboxOptions struct {
	Hostname    string
	StopTimeout time.Duration
	Stage1Path  string
	DNS         *pod.DNS
	Hosts       []pod.HostsEntry
	Volumes     []pod.Volume
	Annotations map[string]string
	Net         NetOptions
	// Sysctls are set in the pod's namespaces.
	Sysctls map[string]string
	// HostPID and HostIPC set pod.Manifest's.
	HostPID, HostIPC bool
	// UserNamespace sets pod.Manifest's.
	UserNamespace *pod.UserNamespace
}

// PrepareSandbox makes a prepared sandbox pod, returned locked; on error
// nothing is left.
func (e *Env) PrepareSandbox(ctx context.Context, o SandboxOptions) (*state.Pod, *pod.Manifest, error) {
	stage1, err := e.Stage1("", o.Stage1Path)
	if err != nil {
		return nil, nil, err
	}
	st, err := e.Store()
	if err != nil {
		return nil, nil, err
	}
	m := &pod.Manifest{
		Kind:          pod.ManifestKind,
		Version:       pod.ManifestVersion,
		Created:       time.Now().UTC(),
		Stage1:        stage1,
		StopTimeout:   pod.Duration(o.StopTimeout),
		Hostname:      o.Hostname,
		DNS:           o.DNS,
		HostsEntries:  o.Hosts,
		Volumes:       o.Volumes,
		Annotations:   o.Annotations,
		Sandbox:       true,
		Sysctls:       o.Sysctls,
		HostPID:       o.HostPID,
		HostIPC:       o.HostIPC,
		UserNamespace: o.UserNamespace,
	}
	if o.StopTimeout <= 0 {
		m.StopTimeout = pod.Duration(DefaultStopTimeout)
	}
	if m.Net, err = e.resolveNet(st, nil, o.Net); err != nil {
		return nil, nil, err
	}
	pd, err := e.createPod(ctx, st, m, nil)
	if err != nil {
		return nil, nil, err
	}
	return pd, m, nil
}

// runningSandbox finds a running sandbox pod and reads its manifest.
func (e *Env) runningSandbox(uuid string) (*state.Pod, *pod.Manifest, error) {
	pd, err := e.FindPod(uuid)
	if err != nil {
		return nil, nil, err
	}
	m, err := pod.ReadManifest(pd.Dir().ManifestFile())
	if err != nil {
		return nil, nil, err
	}
	if !m.Sandbox {
		return nil, nil, fmt.Errorf("pod %s: %w", pd.UUID, pod.ErrNoControl)
	}
	if pd.State != state.Run {
		return nil, nil, fmt.Errorf("pod %s is %s: %w", pd.UUID, pd.State, ErrNotRunning)
	}
	return pd, m, nil
}

// AddApp resolves an app from its image and options as `orbit run` does
// and adds it, created, to a running sandbox pod, with ao.
func (e *Env) AddApp(ctx context.Context, uuid string, o AppOptions, ao AddOptions) (*pod.App, error) {
	pd, m, err := e.runningSandbox(uuid)
	if err != nil {
		return nil, err
	}
	st, err := e.Store()
	if err != nil {
		return nil, err
	}
	img, err := ResolveImage(ctx, st, o.Image)
	if err != nil {
		return nil, err
	}
	return e.AddAppImage(ctx, pd, m, st, img, o, ao)
}

// AddOptions are what an added app has beyond AppOptions.
type AddOptions struct {
	// Env is set over the image's environment.
	Env []string
	// Volumes are host volumes the app's mounts name, added to the pod's.
	Volumes []pod.Volume
	// LogPath is where the app's output is logged, in the CRI's format,
	// unrotated (the kubelet rotates it).
	LogPath string
	// SupplementalGroups are added to the app's user's groups: its
	// primary group and, unless StrictGroups, the groups the image's
	// /etc/group gives it.
	SupplementalGroups []uint32
	StrictGroups       bool
	// MaskedPaths, ReadonlyPaths and NoNewPrivileges set pod.App's.
	MaskedPaths, ReadonlyPaths []string
	NoNewPrivileges            *bool
	// OwnPIDNamespace, Stdin and StdinOnce set pod.App's.
	OwnPIDNamespace  bool
	Stdin, StdinOnce bool
}

// AddAppImage adds an app of a stored image to the sandbox pod pd whose
// manifest is m.
func (e *Env) AddAppImage(ctx context.Context, pd *state.Pod, m *pod.Manifest, st *store.Store, img *store.Image, o AppOptions, ao AddOptions) (*pod.App, error) {
	a, err := e.app(st, img, o, ao.Env, m.Apps)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", o.Image, err)
	}
	if ao.LogPath != "" {
		a.Log = &pod.AppLog{Path: ao.LogPath, MaxSize: -1}
	}
	if ao.StrictGroups {
		a.Process.User.AdditionalGids = nil
	}
	if len(ao.SupplementalGroups) > 0 && !slices.Contains(a.Process.User.AdditionalGids, a.Process.User.GID) {
		a.Process.User.AdditionalGids = append([]uint32{a.Process.User.GID}, a.Process.User.AdditionalGids...)
	}
	for _, g := range ao.SupplementalGroups {
		if !slices.Contains(a.Process.User.AdditionalGids, g) {
			a.Process.User.AdditionalGids = append(a.Process.User.AdditionalGids, g)
		}
	}
	a.MaskedPaths, a.ReadonlyPaths, a.NoNewPrivileges = ao.MaskedPaths, ao.ReadonlyPaths, ao.NoNewPrivileges
	a.OwnPIDNamespace, a.Stdin, a.StdinOnce = ao.OwnPIDNamespace, ao.Stdin, ao.StdinOnce
	req := &pod.ControlRequest{Op: pod.OpAdd, App: a, Volumes: ao.Volumes}
	trees, err := volumeTrees(req)
	if err != nil {
		return nil, fmt.Errorf("pod %s: add app %s: %w", pd.UUID, a.Name, err)
	}
	defer func() {
		for _, f := range trees {
			f.Close()
		}
	}()
	if err := pod.Control(ctx, pd.Dir(), req, trees...); err != nil {
		return nil, fmt.Errorf("pod %s: add app %s: %w", pd.UUID, a.Name, err)
	}
	_ = st.Touch(img.ID)
	return a, nil
}

// volumeTrees clones the source tree of each host volume added with req's
// app, here in the caller's mount namespace, and names them in req. The
// pod's mount namespace is a copy made when the pod started: what the host
// mounted since (a kubelet's volume, a tmpfs under the source) is only in
// the clone, and only a clone can be the source's peer for propagation.
func volumeTrees(req *pod.ControlRequest) ([]*os.File, error) {
	var files []*os.File
	for _, v := range req.Volumes {
		if v.Kind != pod.VolumeHost {
			continue
		}
		fd, err := unix.OpenTree(unix.AT_FDCWD, v.Source, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
		if err != nil {
			for _, f := range files {
				f.Close()
			}
			req.VolumeTrees = nil
			if errors.Is(err, unix.ENOSYS) {
				// Before Linux 5.2 the supervisor binds the source as
				// the pod's namespace has it; propagation is refused.
				return nil, nil
			}
			return nil, fmt.Errorf("volume %s: clone the mounts of %s: %w", v.Name, v.Source, err)
		}
		files = append(files, os.NewFile(uintptr(fd), v.Source))
		req.VolumeTrees = append(req.VolumeTrees, v.Name)
	}
	return files, nil
}

// AppCommand sends one app command (pod.OpStart, OpStop, OpRemove,
// OpUpdate) to a running sandbox pod.
func (e *Env) AppCommand(ctx context.Context, uuid string, req *pod.ControlRequest) error {
	pd, _, err := e.runningSandbox(uuid)
	if err != nil {
		return err
	}
	if err := pod.Control(ctx, pd.Dir(), req); err != nil {
		return fmt.Errorf("pod %s: %s app %s: %w", pd.UUID, req.Op, req.Name, err)
	}
	return nil
}

// AppStatuses are the recorded statuses of a sandbox pod's apps, in the
// manifest's order; an app whose status file is missing is skipped.
func AppStatuses(d pod.Dir, m *pod.Manifest) ([]*pod.AppStatus, error) {
	var out []*pod.AppStatus
	for _, a := range m.Apps {
		st, err := pod.ReadAppStatus(d, a.Name)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}
