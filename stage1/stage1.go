// Package stage1 builds a pod and supervises it. stage0 execs orbit-stage1
// with a pod directory in the run state, its lock descriptor, and a fresh
// mount namespace of the pod's own (docs/stage1-abi.md); from then on the
// process that ran `orbit run` is this supervisor.
//
// A pod is a set of libcontainer containers:
//
//   - the pod's init (orbit-pod-init) in new pid, net, ipc, uts and mount
//     namespaces: PID 1 of the pod, the holder of the shared namespaces and
//     the reaper of orphans;
//   - one container per app, joining the init's pid, net, ipc and uts
//     namespaces, with its own mount namespace and an overlay root of its
//     image's layers, its own cgroup under the pod's, and runc's isolation
//     (capabilities, masked paths, no_new_privs, device rules).
//
// The lifecycle: mount the app roots, start the init, start the apps with
// stage1's own stdout and stderr (so a unit's journal gets their lines),
// forward SIGTERM/SIGINT to them and kill what is left after the pod's stop
// timeout, record each app's exit status as it exits, and when all have
// exited tear everything down (containers, cgroups, mounts) and move the pod
// to exited-garbage. The pod's exit status is its first app's, or the first
// failure's among several.
//
// The fly flavor (fly.go, pod.FlavorFly in the manifest) has no pod init:
// its one app is a container with only a mount namespace of its own. An
// interactive pod's app gets stage1's stdin or a pty (console.go).
package stage1

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/opencontainers/runc/libcontainer"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/orbit-pods/orbit/internal/faultpoint"
	"github.com/orbit-pods/orbit/pod"
	"github.com/orbit-pods/orbit/pod/state"
)

// Options are what stage0 passes on the command line (docs/stage1-abi.md).
type Options struct {
	PodDir pod.Dir
	// Lock is the pod directory, locked by stage0 and inherited.
	Lock *os.File
	// InitPath is the orbit-pod-init binary.
	InitPath string
	Debug    bool
}

// supervisor is one running pod.
type supervisor struct {
	opts     Options
	m        *pod.Manifest
	dir      pod.Dir
	pd       *state.Pod
	initProc *initProcess
	apps     []*runningApp
	mounts   []string
	// idmapped are the idmapped clones of layers in a pod with a user
	// namespace, by layer (userns.go); idmapSeq numbers them.
	idmapped map[string]*idmappedLayer
	idmapSeq int
	lifeline *os.File
	relay    *relay        // an interactive app's terminal, when it has one
	logs     logSet        // the apps' log files (logs.go)
	mds      *mdsState     // the metadata service registration (mds.go)
	mu       sync.Mutex    // guards initProc while starting
	sd       systemdPod    // what systemd passed on (systemd.go)
	attach   *attachServer // a sandbox pod's attach clients (attach.go)
	sandbox                // a sandbox pod's app commands (apps.go, control.go)
}

func (s *supervisor) startedInit() *initProcess {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.initProc
}

type runningApp struct {
	app  *pod.App
	c    *libcontainer.Container
	proc *libcontainer.Process
	done chan struct{}
	code int
}

// Run runs the pod to its end and returns the exit status for stage1 to
// exit with.
func Run(ctx context.Context, opts Options) (int, error) {
	// What stage0 left open for this process is its own: not the pod
	// init's, nor any other child's (the helpers that need the host's
	// mount namespace are given it explicitly).
	if opts.Lock != nil {
		unix.CloseOnExec(int(opts.Lock.Fd()))
	}
	if f := hostMountNS(); f != nil {
		unix.CloseOnExec(int(f.Fd()))
	}
	m, err := pod.ReadManifest(opts.PodDir.ManifestFile())
	if err != nil {
		return 1, err
	}
	pods, err := state.Open(filepath.Dir(filepath.Dir(string(opts.PodDir))))
	if err != nil {
		return 1, err
	}
	pd, err := pods.Adopt(opts.PodDir, opts.Lock)
	if err != nil {
		return 1, err
	}
	if pd.State != state.Run {
		return 1, fmt.Errorf("pod %s is in state %s, not run", pd.UUID, pd.State)
	}
	switch m.Flavor {
	case "", pod.FlavorDefault, pod.FlavorFly:
	default:
		return 1, fmt.Errorf("pod %s: stage1 flavor %q is not one this stage1 runs (default, fly)", m.UUID, m.Flavor)
	}
	s := &supervisor{opts: opts, m: m, dir: opts.PodDir, pd: pd}

	// Signals are caught before anything starts, so a stop that arrives
	// while the pod is being built still tears it down.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, unix.SIGTERM, unix.SIGINT, unix.SIGHUP)
	defer signal.Stop(sigs)

	// A stop while the pod is being built kills the pod's init, which
	// makes whatever start is waiting for fail.
	starting := make(chan struct{})
	earlyc := make(chan os.Signal, 1)
	go func() {
		select {
		case sig := <-sigs:
			s.logf("%v while starting: killing the pod", sig)
			if p := s.startedInit(); p != nil {
				_ = p.Signal(unix.SIGKILL)
			}
			earlyc <- sig
		case <-starting:
			earlyc <- nil
		}
	}()
	if s.m.Sandbox {
		// Listening before the pod is ready (stage1/pid): whoever waits
		// for that can send app commands at once.
		if err := s.serveControl(); err != nil {
			return 1, err
		}
		defer s.closeControl()
		if err := s.serveAttach(); err != nil {
			return 1, err
		}
		defer s.closeAttach()
	}
	// App commands wait for the pod to be built: adding an app to a pod
	// in a user namespace needs the init that makes it.
	s.ctlMu.Lock()
	code, err := s.start()
	s.ctlMu.Unlock()
	close(starting)
	early := <-earlyc
	switch {
	case early != nil:
		code = 128 + int(early.(syscall.Signal))
	case err == nil && s.m.Sandbox:
		code = s.superviseSandbox(ctx, sigs)
	case err == nil:
		faultpoint.Hit("stage1.running")
		code = s.supervise(ctx, sigs)
	}
	if terr := s.teardown(); terr != nil {
		err = errors.Join(err, terr)
	}
	if err != nil {
		return 1, err
	}
	return code, nil
}

var startTime = time.Now()

func (s *supervisor) logf(format string, args ...any) {
	if s.opts.Debug {
		fmt.Fprintf(os.Stderr, "stage1 +%dms: "+format+"\n", append([]any{time.Since(startTime).Milliseconds()}, args...)...)
	}
}

func (s *supervisor) start() (int, error) {
	if err := os.MkdirAll(s.dir.ExitDir(), 0o755); err != nil {
		return 1, err
	}
	if err := s.setUpSystemd(); err != nil {
		return 1, err
	}
	if leaf, err := enterSupervisorLeaf(); err != nil {
		return 1, err
	} else if leaf != "" {
		s.logf("supervisor moved into cgroup %s", leaf)
	}
	if err := recordParentCgroup(s.dir); err != nil {
		return 1, err
	}
	if err := os.WriteFile(s.dir.SupervisorPIDFile(), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return 1, err
	}
	// The init comes first: in a pod with a user namespace it makes the
	// namespaces that the network and the apps' roots are set up in.
	if s.m.UserNamespace != nil {
		if err := s.letPodRootIn(); err != nil {
			return 1, err
		}
	}
	fly := s.m.Flavor == pod.FlavorFly
	if !fly {
		s.logf("starting the pod init")
		if err := s.startInit(); err != nil {
			return 1, err
		}
		faultpoint.Hit("stage1.init-started")
	}
	if err := s.attachNetworks(); err != nil {
		return 1, err
	}
	faultpoint.Hit("stage1.network-attached")
	if !fly {
		if err := s.setSysctls(); err != nil {
			return 1, err
		}
	}
	if err := writeEtc(s.m, s.dir); err != nil {
		return 1, err
	}
	if err := s.registerMDS(); err != nil {
		return 1, err
	}
	if err := makeEmptyVolumes(s.m, s.dir); err != nil {
		return 1, err
	}
	for i := range s.m.Apps {
		a := &s.m.Apps[i]
		if a.NoOverlay {
			s.logf("app %s: root is the copy at %s", a.Name, s.dir.Rootfs(a.Name))
			continue
		}
		roots, err := s.mountAppRoot(a)
		if err != nil {
			return 1, fmt.Errorf("app %s: %w", a.Name, err)
		}
		s.mounts = append(s.mounts, roots...)
		s.logf("app %s: overlay of %d layers at %s", a.Name, len(a.Layers), s.dir.Rootfs(a.Name))
	}
	faultpoint.Hit("stage1.overlays-mounted")
	// The apps start side by side: each is a container start of its own
	// (a re-exec, namespaces, mounts), and they only depend on the init.
	slots := make([]*runningApp, len(s.m.Apps))
	var g errgroup.Group
	for i := range s.m.Apps {
		g.Go(func() error { return s.startApp(&s.m.Apps[i], &slots[i]) })
	}
	err := g.Wait()
	for _, ra := range slots {
		if ra != nil {
			s.apps = append(s.apps, ra)
		}
	}
	if err != nil {
		return 1, err
	}
	// The init's PID (a fly pod's app's), written once every app has
	// started, says the pod is ready (status --wait-ready) and is what
	// stop --force kills.
	var pid int
	if fly {
		pid, err = s.apps[0].proc.Pid()
	} else {
		pid, err = s.initProc.Pid()
	}
	if err != nil {
		return 1, err
	}
	// machined shows the first app's root as the machine's; a sandbox
	// may start with no app.
	root := ""
	if len(s.m.Apps) > 0 {
		root = s.dir.Rootfs(s.m.Apps[0].Name)
	}
	s.registerMachine(pid, root)
	return 0, os.WriteFile(s.dir.PIDFile(), []byte(strconv.Itoa(pid)+"\n"), 0o644)
}

func (s *supervisor) startApp(a *pod.App, slot **runningApp) error {
	spec, err := s.spec(a)
	if err != nil {
		return err
	}
	s.systemdSpec(a, spec)
	id := "app-" + a.Name
	cfg, err := libcontainerConfig(id, spec)
	if err != nil {
		return err
	}
	c, err := libcontainer.Create(s.dir.ContainersDir(), id, cfg)
	if err != nil {
		return fmt.Errorf("create app %s: %w", a.Name, err)
	}
	ra := &runningApp{app: a, c: c, done: make(chan struct{})}
	*slot = ra
	groups := make([]int, 0, len(spec.Process.User.AdditionalGids))
	for _, g := range spec.Process.User.AdditionalGids {
		groups = append(groups, int(g))
	}
	p := &libcontainer.Process{
		Args:             spec.Process.Args,
		Env:              spec.Process.Env,
		UID:              int(spec.Process.User.UID),
		GID:              int(spec.Process.User.GID),
		AdditionalGroups: groups,
		Cwd:              spec.Process.Cwd,
		Init:             true,
		ExtraFiles:       s.listenFiles(a),
	}
	started, failed, err := s.appStdio(a, p)
	if err != nil {
		return fmt.Errorf("app %s: %w", a.Name, err)
	}
	if err := s.runApp(c, p, a, spec); err != nil {
		failed()
		close(ra.done)
		ra.code = 127
		_ = s.writeExit(a.Name, ra.code)
		return fmt.Errorf("start app %s: %w", a.Name, err)
	}
	ra.proc = p
	if err := started(); err != nil {
		_ = c.Signal(unix.SIGKILL)
		_, _ = p.Wait()
		close(ra.done)
		ra.code = 127
		_ = s.writeExit(a.Name, ra.code)
		return fmt.Errorf("app %s: %w", a.Name, err)
	}
	s.logf("app %s started", a.Name)
	go func() {
		ps, err := p.Wait()
		if s.relay != nil {
			s.relay.close()
		}
		ra.code = exitCode(ps, err)
		s.logf("app %s exited with status %d", a.Name, ra.code)
		if len(a.PostStop) > 0 {
			if err := s.postStop(a, spec); err != nil {
				fmt.Fprintf(os.Stderr, "stage1: app %s: post-stop handler: %v\n", a.Name, err)
			}
		}
		if oomKilled(c) {
			s.logf("app %s was killed for running out of memory", a.Name)
			if err := os.MkdirAll(filepath.Dir(s.dir.OOMFile(a.Name)), 0o755); err == nil {
				_ = os.WriteFile(s.dir.OOMFile(a.Name), nil, 0o644)
			}
		}
		if err := s.writeExit(a.Name, ra.code); err != nil {
			fmt.Fprintf(os.Stderr, "stage1: record exit of app %s: %v\n", a.Name, err)
		}
		close(ra.done)
	}()
	return nil
}

// spec is the runtime spec of app in the pod's flavor.
func (s *supervisor) spec(a *pod.App) (*specs.Spec, error) {
	var spec *specs.Spec
	var err error
	if s.m.Flavor == pod.FlavorFly {
		spec, err = flySpec(s.m, s.dir, a)
	} else {
		var initPID int
		if initPID, err = s.initProc.Pid(); err != nil {
			return nil, err
		}
		spec, err = appSpec(s.m, s.dir, a, initPID, s.volumeTrees)
	}
	if err == nil {
		s.mdsEnv(spec)
	}
	return spec, err
}

func exitCode(ps *os.ProcessState, err error) int {
	if ps == nil {
		if err != nil {
			return 255
		}
		return 0
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

func (s *supervisor) writeExit(app string, code int) error {
	f := s.dir.ExitFile(app)
	tmp := f + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(code)+"\n"), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, f)
}

// supervise waits for every app to exit, forwarding stop signals and
// killing what is left once the stop timeout runs out after the first.
func (s *supervisor) supervise(ctx context.Context, sigs <-chan os.Signal) int {
	all := make(chan struct{})
	go func() {
		for _, a := range s.apps {
			<-a.done
		}
		close(all)
	}()
	var kill <-chan time.Time
	for {
		select {
		case <-all:
			return s.podExitCode()
		case sig := <-sigs:
			s.logf("forwarding %v to the apps", sig)
			s.signalApps(sig)
			if kill == nil {
				kill = time.After(time.Duration(s.m.StopTimeout))
			}
		case <-ctx.Done():
			s.signalApps(unix.SIGTERM)
			if kill == nil {
				kill = time.After(time.Duration(s.m.StopTimeout))
			}
		case <-kill:
			s.logf("stop timeout of %v passed: killing the apps", time.Duration(s.m.StopTimeout))
			s.killApps()
		}
	}
}

func (s *supervisor) podExitCode() int {
	for _, a := range s.apps {
		if a.code != 0 {
			return a.code
		}
	}
	return 0
}

func (s *supervisor) signalApps(sig os.Signal) {
	for _, a := range s.apps {
		select {
		case <-a.done:
			continue
		default:
		}
		if err := a.proc.Signal(sig); err != nil {
			s.logf("signal app %s: %v", a.app.Name, err)
		}
	}
}

func (s *supervisor) killApps() {
	for _, a := range s.apps {
		if err := a.c.Signal(unix.SIGKILL); err != nil && !errors.Is(err, libcontainer.ErrNotRunning) {
			s.logf("kill app %s: %v", a.app.Name, err)
		}
	}
}

// teardown removes everything start made, whatever state it got to.
func (s *supervisor) teardown() error {
	var errs []error
	s.closeSystemd()
	var wg sync.WaitGroup
	for _, a := range s.apps {
		if a.proc != nil {
			_ = a.c.Signal(unix.SIGKILL)
			wg.Add(1)
			go func() { defer wg.Done(); <-a.done }()
		}
	}
	wg.Wait()
	if s.relay != nil {
		s.relay.close()
	}
	for _, a := range s.apps {
		if err := a.c.Destroy(); err != nil {
			errs = append(errs, fmt.Errorf("destroy app %s: %w", a.app.Name, err))
		}
	}
	if s.initProc != nil {
		// SIGKILL to the pod's PID 1 kills everything in the pod.
		if err := s.initProc.Signal(unix.SIGKILL); err != nil {
			s.logf("kill pod init: %v", err)
		}
		if err := s.waitInit(); err != nil {
			errs = append(errs, err)
		}
	}
	if s.m.UserNamespace != nil {
		if err := s.closePodDir(); err != nil {
			errs = append(errs, fmt.Errorf("close the pod directory: %w", err))
		}
	}
	s.closeLogs()
	s.unregisterMDS()
	if err := s.detachNetworks(); err != nil {
		errs = append(errs, err)
	}
	for i := len(s.mounts) - 1; i >= 0; i-- {
		// Private first: a volume tree may be the host's peer (rshared),
		// and unmounting a peer's submounts would unmount the host's.
		_ = unix.Mount("", s.mounts[i], "", unix.MS_PRIVATE|unix.MS_REC, "")
		if err := unix.Unmount(s.mounts[i], unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", s.mounts[i], err))
		}
	}
	if err := removePodCgroup(s.dir, s.m.UUID); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		_ = os.WriteFile(s.dir.ReleasedFile(), nil, 0o644)
	}
	if err := s.pd.Transition(state.ExitedGarbage); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// waitInit waits for the killed pod init to be gone. A PID namespace's
// init is not done dying until every process of the namespace is reaped,
// and some have stage1 as parent (an app whose start failed half-way), so
// stage1 reaps whatever children it has meanwhile.
func (s *supervisor) waitInit() error {
	done := make(chan struct{})
	go func() {
		_, _ = s.initProc.Wait()
		close(done)
	}()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case <-done:
			return nil
		case <-deadline:
			return errors.New("the pod's init did not exit within 30s of SIGKILL")
		case <-time.After(20 * time.Millisecond):
			for {
				var ws unix.WaitStatus
				if pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil); pid <= 0 || err != nil {
					break
				}
			}
		}
	}
}
