package stage1

import (
	"os"
	"strconv"
	"strings"

	"github.com/coreos/go-systemd/v22/activation"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/orbit-pods/orbit/pod"
)

// A pod run as a systemd unit's ExecStart gets what systemd gives a
// service, passed on to its apps (docs/units.md):
//
//   - NOTIFY_SOCKET (Type=notify): each app gets a socket of the pod's
//     (notify.go) whose messages stage1 forwards to systemd as its own;
//   - LISTEN_FDS (socket activation): the sockets go to the pod's first app
//     as descriptors 3 and up, with LISTEN_FDS, LISTEN_FDNAMES and a
//     LISTEN_PID that is the app's own PID (set by listenExec, below);
//   - systemd-machined, where it runs, learns of the pod (machined.go).
//
// stage0 execs stage1 in the same process, so what systemd gave `orbit
// run` (environment, descriptors, the main PID) is stage1's.

// systemdPod is what stage1 holds for those.
type systemdPod struct {
	notify  *notifyRelay
	listen  []*os.File
	machine string // the name machined knows the pod by, once registered
}

// listenExecArg makes orbit-pod-init, bind-mounted into an app at
// listenExecPath, set LISTEN_PID to its PID and exec the app's command:
// the app's PID in the pod's namespace is known only from inside.
const (
	listenExecPath = "/.orbit/pod-init"
	listenExecArg  = "listen-exec"
)

// setUpSystemd takes what systemd passed: the socket-activation
// descriptors (marked close-on-exec, so only the app they are for gets
// them) and the notify socket. It is called before anything starts.
func (s *supervisor) setUpSystemd() error {
	s.sd.listen = activation.Files(true)
	if len(s.sd.listen) > 0 {
		s.logf("socket activation: %d descriptors for app %s", len(s.sd.listen), s.m.Apps[0].Name)
	}
	r, err := startNotifyRelay(s.dir, s.logf)
	if err != nil {
		return err
	}
	s.sd.notify = r
	return nil
}

// systemdSpec adds to an app's spec what systemd passed on: the notify
// socket, and for the first app the socket-activation environment.
func (s *supervisor) systemdSpec(a *pod.App, spec *specs.Spec) {
	if s.sd.notify != nil {
		spec.Mounts = append(spec.Mounts, s.sd.notify.mount())
		spec.Process.Env = append(withoutEnv(spec.Process.Env, "NOTIFY_SOCKET="), "NOTIFY_SOCKET="+notifySocketInApp)
	}
	if s.listenFiles(a) == nil {
		return
	}
	names := make([]string, len(s.sd.listen))
	for i, f := range s.sd.listen {
		names[i] = f.Name()
	}
	p := spec.Process
	p.Env = append(withoutEnv(p.Env, "LISTEN_"), "LISTEN_FDS="+strconv.Itoa(len(s.sd.listen)), "LISTEN_FDNAMES="+strings.Join(names, ":"))
	p.Args = append([]string{listenExecPath, listenExecArg, "--"}, p.Args...)
	spec.Mounts = append(spec.Mounts, specs.Mount{
		Destination: listenExecPath,
		Type:        "bind",
		Source:      s.opts.InitPath,
		Options:     []string{"bind", "ro", "nosuid", "nodev"},
	})
}

// listenFiles are the socket-activation descriptors app gets, as
// descriptors 3 and up.
func (s *supervisor) listenFiles(a *pod.App) []*os.File {
	if len(s.sd.listen) == 0 || a.Name != s.m.Apps[0].Name {
		return nil
	}
	return s.sd.listen
}

// closeSystemd lets go of what setUpSystemd and the pod's start took.
func (s *supervisor) closeSystemd() {
	s.unregisterMachine()
	if s.sd.notify != nil {
		s.sd.notify.close()
	}
	for _, f := range s.sd.listen {
		f.Close()
	}
}

func withoutEnv(env []string, prefix string) []string {
	out := env[:0:0]
	for _, e := range env {
		if !strings.HasPrefix(e, prefix) {
			out = append(out, e)
		}
	}
	return out
}
