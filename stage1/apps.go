package stage1

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/moby/sys/mountinfo"
	"github.com/opencontainers/runc/libcontainer"
	"golang.org/x/sys/unix"

	"github.com/orbit-pods/orbit/pod"
	"github.com/orbit-pods/orbit/pod/applog"
)

// A sandbox pod (pod.Manifest.Sandbox) is the CRI's pod sandbox: it runs
// until it is stopped, whatever its apps do, and apps come and go while it
// runs through commands on its control socket (control.go). Each app's
// lifecycle is recorded in pod.AppStatusFile so that a reader (orbit-cri,
// `orbit app list`) needs nothing but the pod directory.

// sandbox is the supervisor's state for app commands.
type sandbox struct {
	sandboxApps map[string]*sandboxApp
	control     *net.UnixListener
	controlDone chan struct{}
	// ctlMu serialises app commands and exit records; appsMu guards
	// supervisor.apps, which the signal paths read.
	ctlMu  sync.Mutex
	appsMu sync.Mutex
	// volumeTrees are the volumes mounted from trees that came with app
	// commands, by name, and where (pod.Dir.VolumeTree).
	volumeTrees map[string]string
}

// sandboxApp is an app added to a running sandbox pod.
type sandboxApp struct {
	app *pod.App
	ra  *runningApp // nil until started
	st  pod.AppStatus
}

// writeStatus records the app's status; a failure is only logged, as the
// app itself is unaffected.
func (s *supervisor) writeStatus(sa *sandboxApp) {
	if err := pod.WriteAppStatus(s.dir, &sa.st); err != nil {
		fmt.Fprintf(os.Stderr, "stage1: record status of app %s: %v\n", sa.app.Name, err)
	}
}

// writeManifest rewrites pod.json with the pod's current apps, whole.
func (s *supervisor) writeManifest() error {
	b, err := json.MarshalIndent(s.m, "", "  ")
	if err != nil {
		return err
	}
	f := s.dir.ManifestFile()
	if err := os.WriteFile(f+".tmp", b, 0o644); err != nil {
		return fmt.Errorf("write pod manifest: %w", err)
	}
	return os.Rename(f+".tmp", f)
}

// addApp mounts a new app's root and the volume trees that came with it,
// and records it in pod.json, created.
func (s *supervisor) addApp(a *pod.App, vols []pod.Volume, trees map[string]*os.File) error {
	if _, ok := s.sandboxApps[a.Name]; ok {
		return fmt.Errorf("the pod has an app %q already", a.Name)
	}
	if a.NoOverlay {
		return fmt.Errorf("app %s: noOverlay apps cannot be added to a running pod", a.Name)
	}
	// The pod's manifest with the app must still be valid (name, volumes,
	// process, layers).
	check := *s.m
	check.Apps = append(slices.Clone(s.m.Apps), *a)
	check.Volumes = append(slices.Clone(s.m.Volumes), vols...)
	if err := check.Validate(); err != nil {
		return err
	}
	added := map[string]bool{}
	for _, v := range vols {
		if v.Kind != pod.VolumeHost {
			return fmt.Errorf("volume %s: only host volumes can be added to a running pod", v.Name)
		}
		added[v.Name] = true
	}
	for name := range trees {
		if !added[name] {
			return fmt.Errorf("volume tree %s: not a volume added with app %s", name, a.Name)
		}
	}
	// Refused here rather than at its start, as volumeMounts would.
	for _, mp := range a.Mounts {
		if mp.Propagates() && trees[mp.Volume] == nil {
			return errNoTree(a, mp)
		}
	}
	var mounted []string
	undoTrees := func() {
		for _, p := range mounted {
			unmountTree(p)
			delete(s.volumeTrees, filepath.Base(p))
		}
	}
	for name, f := range trees {
		p, err := s.mountVolumeTree(a, name, f)
		if err != nil {
			undoTrees()
			return err
		}
		mounted = append(mounted, p)
	}
	roots, err := s.mountAppRoot(a)
	if err != nil {
		undoTrees()
		_ = os.RemoveAll(s.dir.AppDir(a.Name))
		return fmt.Errorf("app %s: %w", a.Name, err)
	}
	oldVols := s.m.Volumes
	s.m.Apps, s.m.Volumes = check.Apps, check.Volumes
	if err := s.writeManifest(); err != nil {
		s.m.Apps, s.m.Volumes = s.m.Apps[:len(s.m.Apps)-1], oldVols
		undoTrees()
		_ = s.unmountAppRoot(a)
		_ = os.RemoveAll(s.dir.AppDir(a.Name))
		return err
	}
	s.mounts = append(s.mounts, mounted...)
	s.mounts = append(s.mounts, roots...)
	sa := &sandboxApp{app: a, st: pod.AppStatus{Name: a.Name, State: pod.AppCreated, Created: time.Now().UTC()}}
	s.sandboxApps[a.Name] = sa
	s.writeStatus(sa)
	s.logf("app %s added", a.Name)
	return nil
}

// mountVolumeTree mounts the tree f, cloned from the host's mount
// namespace, at the volume's place in the pod's, with the propagation that
// the app's mount of it asks for.
func (s *supervisor) mountVolumeTree(a *pod.App, volume string, f *os.File) (string, error) {
	prop := pod.PropagationPrivate
	for _, mp := range a.Mounts {
		if mp.Volume == volume && mp.Propagation != "" {
			prop = mp.Propagation
		}
	}
	p := s.dir.VolumeTree(volume)
	// A file (a kubelet's /etc/hosts, a termination log) is mounted on a
	// file, a directory on a directory.
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return "", fmt.Errorf("volume %s: %w", volume, err)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return "", fmt.Errorf("volume %s: %w", volume, err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		if err := os.Mkdir(p, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return "", fmt.Errorf("volume %s: %w", volume, err)
		}
	} else {
		t, err := os.OpenFile(p, os.O_CREATE|os.O_RDONLY, 0o600)
		if err != nil {
			return "", fmt.Errorf("volume %s: %w", volume, err)
		}
		t.Close()
	}
	if err := unix.MoveMount(int(f.Fd()), "", unix.AT_FDCWD, p, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		_ = os.Remove(p)
		return "", fmt.Errorf("volume %s: mount its tree: %w", volume, err)
	}
	undo := func() { unmountTree(p) }
	// A clone of a shared mount is its peer: the host's mounts under the
	// source reach it (and the app's reach the host) only then.
	info, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter(p))
	if err != nil || len(info) == 0 {
		undo()
		return "", fmt.Errorf("volume %s: read its mount: %v", volume, err)
	}
	shared := strings.Contains(info[0].Optional, "shared:")
	switch prop {
	case pod.PropagationShared:
		if !shared {
			undo()
			return "", fmt.Errorf("volume %s: rshared propagation needs its source to be a shared mount on the host (mount --make-rshared)", volume)
		}
	case pod.PropagationSlave:
		if !shared {
			undo()
			return "", fmt.Errorf("volume %s: rslave propagation needs its source to be a shared mount on the host (mount --make-rshared)", volume)
		}
		err = unix.Mount("", p, "", unix.MS_SLAVE|unix.MS_REC, "")
	default:
		err = unix.Mount("", p, "", unix.MS_PRIVATE|unix.MS_REC, "")
	}
	if err != nil {
		undo()
		return "", fmt.Errorf("volume %s: set %s propagation: %w", volume, prop, err)
	}
	if s.volumeTrees == nil {
		s.volumeTrees = map[string]string{}
	}
	s.volumeTrees[volume] = p
	return p, nil
}

func (s *supervisor) sandboxApp(name string) (*sandboxApp, error) {
	sa, ok := s.sandboxApps[name]
	if !ok {
		return nil, fmt.Errorf("the pod has no app %q", name)
	}
	return sa, nil
}

// startAddedApp starts a created app; its exit is recorded when it comes.
func (s *supervisor) startAddedApp(name string) error {
	sa, err := s.sandboxApp(name)
	if err != nil {
		return err
	}
	if sa.st.State != pod.AppCreated {
		return fmt.Errorf("app %s is %s: only a created app starts", name, sa.st.State)
	}
	var ra *runningApp
	err = s.startApp(sa.app, &ra)
	if ra != nil {
		s.appsMu.Lock()
		s.apps = append(s.apps, ra)
		s.appsMu.Unlock()
	}
	if err != nil {
		sa.st.State, sa.st.ExitCode, sa.st.Reason = pod.AppExited, 128, "StartError"
		sa.st.Finished = time.Now().UTC()
		s.writeStatus(sa)
		return err
	}
	sa.ra = ra
	sa.st.State, sa.st.Started = pod.AppRunning, time.Now().UTC()
	sa.st.PID, _ = ra.proc.Pid()
	s.writeStatus(sa)
	go func() {
		<-ra.done
		s.ctlMu.Lock()
		defer s.ctlMu.Unlock()
		if s.sandboxApps[name] == sa { // not removed meanwhile
			s.recordExit(sa)
		}
	}()
	return nil
}

// recordExit records a started app's end, once; the caller holds ctlMu.
func (s *supervisor) recordExit(sa *sandboxApp) {
	if sa.st.State == pod.AppExited {
		return
	}
	sa.st.State, sa.st.ExitCode, sa.st.PID = pod.AppExited, sa.ra.code, 0
	sa.st.Finished = time.Now().UTC()
	if _, err := os.Stat(s.dir.OOMFile(sa.app.Name)); err == nil {
		sa.st.OOMKilled, sa.st.Reason = true, "OOMKilled"
	} else if sa.ra.code == 0 {
		sa.st.Reason = "Completed"
	} else {
		sa.st.Reason = "Error"
	}
	s.writeStatus(sa)
}

// stopApp sends a running app SIGTERM, and SIGKILL after timeout, and
// waits for it to be gone.
func (s *supervisor) stopApp(name string, timeout time.Duration) error {
	sa, err := s.sandboxApp(name)
	if err != nil {
		return err
	}
	if sa.ra == nil || sa.ra.proc == nil {
		return nil // never started: nothing runs
	}
	defer func() {
		select {
		case <-sa.ra.done:
			s.recordExit(sa)
		default:
		}
	}()
	select {
	case <-sa.ra.done:
		return nil
	default:
	}
	if timeout > 0 {
		if err := sa.ra.proc.Signal(unix.SIGTERM); err != nil {
			s.logf("signal app %s: %v", name, err)
		}
		select {
		case <-sa.ra.done:
			return nil
		case <-time.After(timeout):
		}
	}
	if err := sa.ra.c.Signal(unix.SIGKILL); err != nil && !errors.Is(err, libcontainer.ErrNotRunning) {
		s.logf("kill app %s: %v", name, err)
	}
	select {
	case <-sa.ra.done:
		return nil
	case <-time.After(30 * time.Second):
		return fmt.Errorf("app %s did not exit within 30s of SIGKILL", name)
	}
}

// removeApp stops an app if it runs and removes all of it: container,
// root, records.
func (s *supervisor) removeApp(name string) error {
	sa, err := s.sandboxApp(name)
	if err != nil {
		return err
	}
	if err := s.stopApp(name, 0); err != nil {
		return err
	}
	var errs []error
	if sa.ra != nil {
		if err := sa.ra.c.Destroy(); err != nil {
			errs = append(errs, fmt.Errorf("destroy app %s: %w", name, err))
		}
		s.appsMu.Lock()
		s.apps = slices.DeleteFunc(s.apps, func(r *runningApp) bool { return r == sa.ra })
		s.appsMu.Unlock()
	} else if c, err := libcontainer.Load(s.dir.ContainersDir(), "app-"+name); err == nil {
		// A start that failed half-way leaves a container.
		_ = c.Destroy()
	}
	s.closeAppLog(sa.app)
	if err := s.unmountAppRoot(sa.app); err != nil {
		return errors.Join(append(errs, err)...)
	}
	s.m.Apps = slices.DeleteFunc(s.m.Apps, func(a pod.App) bool { return a.Name == name })
	// The trees of volumes no other app mounts go with it.
	for _, mp := range sa.app.Mounts {
		p, ok := s.volumeTrees[mp.Volume]
		if !ok || s.volumeMounted(mp.Volume) {
			continue
		}
		unmountTree(p)
		delete(s.volumeTrees, mp.Volume)
		s.mounts = slices.DeleteFunc(s.mounts, func(m string) bool { return m == p })
	}
	delete(s.sandboxApps, name)
	if err := s.writeManifest(); err != nil {
		errs = append(errs, err)
	}
	for _, p := range []string{s.dir.AppDir(name), s.dir.ExitFile(name), s.dir.AppStatusFile(name), s.dir.OOMFile(name)} {
		if err := os.RemoveAll(p); err != nil {
			errs = append(errs, err)
		}
	}
	s.logf("app %s removed", name)
	return errors.Join(errs...)
}

// unmountTree unmounts a volume tree and removes its mount point. The tree
// is made private first: a tree of an rshared mount is the host's peer,
// and unmounting a peer's submounts unmounts the host's.
func unmountTree(p string) {
	_ = unix.Mount("", p, "", unix.MS_PRIVATE|unix.MS_REC, "")
	_ = unix.Unmount(p, unix.MNT_DETACH)
	_ = os.Remove(p)
}

// volumeMounted says whether an app of the pod mounts the volume.
func (s *supervisor) volumeMounted(volume string) bool {
	for _, a := range s.m.Apps {
		for _, mp := range a.Mounts {
			if mp.Volume == volume {
				return true
			}
		}
	}
	return false
}

// appLog is the open log file of an app, nil when none is open.
func (s *supervisor) appLog(a *pod.App) *applog.File {
	s.logs.mu.Lock()
	defer s.logs.mu.Unlock()
	for _, f := range s.logs.files {
		if f.Path() == s.dir.LogFile(a) {
			return f
		}
	}
	return nil
}

// reopenLog reopens an app's log file, as a kubelet asks once it has
// moved the file away to rotate it.
func (s *supervisor) reopenLog(name string) error {
	sa, err := s.sandboxApp(name)
	if err != nil {
		return err
	}
	f := s.appLog(sa.app)
	if f == nil {
		return fmt.Errorf("app %s has no open log", name)
	}
	if err := f.Reopen(); err != nil {
		return fmt.Errorf("app %s: reopen log: %w", name, err)
	}
	return nil
}

// closeAppLog closes a removed app's log file.
func (s *supervisor) closeAppLog(a *pod.App) {
	f := s.appLog(a)
	if f == nil {
		return
	}
	s.logs.mu.Lock()
	s.logs.files = slices.DeleteFunc(s.logs.files, func(x *applog.File) bool { return x == f })
	s.logs.mu.Unlock()
	_ = f.Close()
}

// updateApp sets a running app's cgroup limits.
func (s *supervisor) updateApp(name string, r *pod.LinuxResourcesUpdate) error {
	sa, err := s.sandboxApp(name)
	if err != nil {
		return err
	}
	if r == nil {
		return errors.New("update: no resources given")
	}
	if sa.ra == nil {
		return fmt.Errorf("app %s is %s: only a started app's limits can change", name, sa.st.State)
	}
	cfg := sa.ra.c.Config()
	res := cfg.Cgroups.Resources
	if r.MemoryLimit != 0 {
		res.Memory = r.MemoryLimit
	}
	if r.CPUShares != 0 {
		res.CpuShares = r.CPUShares
	}
	if r.CPUQuota != 0 {
		res.CpuQuota = r.CPUQuota
	}
	if r.CPUPeriod != 0 {
		res.CpuPeriod = r.CPUPeriod
	}
	if err := sa.ra.c.Set(cfg); err != nil {
		return fmt.Errorf("update app %s: %w", name, err)
	}
	return nil
}

// initGone is closed when the pod's init exits: its pidfd becomes readable
// (even while it is a zombie, which teardown reaps).
func (s *supervisor) initGone() <-chan struct{} {
	done := make(chan struct{})
	pid, err := s.initProc.Pid()
	if err != nil {
		return done
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return done
	}
	go func() {
		defer unix.Close(fd)
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for {
			if _, err := unix.Poll(fds, -1); err == nil || !errors.Is(err, unix.EINTR) {
				close(done)
				return
			}
		}
	}()
	return done
}

// superviseSandbox runs a sandbox pod until it is told to stop, then stops
// its apps as supervise does and returns 0.
func (s *supervisor) superviseSandbox(ctx context.Context, sigs <-chan os.Signal) int {
	select {
	case sig := <-sigs:
		s.logf("%v: stopping the sandbox", sig)
	case <-ctx.Done():
	case <-s.initGone():
		// `orbit stop --force` killed the pod's init, and with it every app.
		s.logf("the pod's init is gone: stopping the sandbox")
	}
	// No app comes or goes from here on.
	s.closeControl()
	s.appsMu.Lock()
	apps := slices.Clone(s.apps)
	s.appsMu.Unlock()
	s.signalApps(unix.SIGTERM)
	all := make(chan struct{})
	go func() {
		for _, a := range apps {
			<-a.done
		}
		close(all)
	}()
	select {
	case <-all:
	case <-time.After(time.Duration(s.m.StopTimeout)):
		s.logf("stop timeout of %v passed: killing the apps", time.Duration(s.m.StopTimeout))
		s.killApps()
	}
	return 0
}
