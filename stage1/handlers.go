package stage1

import (
	"fmt"
	"os"

	"github.com/opencontainers/runc/libcontainer"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/orbit-pods/orbit/pod"
)

// appc event handlers. A pre-start handler runs inside the app's container
// after it is made and before the app execs: libcontainer's Start leaves
// the app's init waiting at the exec, the handler runs beside it (joining
// its namespaces and root), and Exec lets the app go. A post-stop handler
// runs after the app exited, in a short-lived container on the same root
// and in the pod's namespaces.

// runApp starts p as c's init, with a's pre-start handler first.
func (s *supervisor) runApp(c *libcontainer.Container, p *libcontainer.Process, a *pod.App, spec *specs.Spec) error {
	if len(a.PreStart) == 0 {
		return c.Run(p)
	}
	if err := c.Start(p); err != nil {
		return err
	}
	code, err := s.runHandler(c, a.PreStart, spec)
	if err == nil && code != 0 {
		err = fmt.Errorf("exit status %d", code)
	}
	if err != nil {
		_ = c.Signal(unix.SIGKILL)
		_, _ = p.Wait()
		return fmt.Errorf("pre-start handler %q: %w", a.PreStart, err)
	}
	s.logf("app %s: pre-start handler done", a.Name)
	return c.Exec()
}

// runHandler runs argv as an extra process of c, as the app's user.
func (s *supervisor) runHandler(c *libcontainer.Container, argv []string, spec *specs.Spec) (int, error) {
	hp := &libcontainer.Process{
		Args:   argv,
		Env:    spec.Process.Env,
		UID:    int(spec.Process.User.UID),
		GID:    int(spec.Process.User.GID),
		Cwd:    spec.Process.Cwd,
		Stdout: os.Stdout,
		Stderr: os.Stderr,
	}
	if err := c.Run(hp); err != nil {
		return 0, err
	}
	ps, err := hp.Wait()
	return exitCode(ps, err), nil
}

// postStop runs a's post-stop handler in a container of its own.
func (s *supervisor) postStop(a *pod.App, spec *specs.Spec) error {
	hs := *spec
	proc := *spec.Process
	proc.Args = a.PostStop
	hs.Process = &proc
	if spec.Linux != nil {
		lin := *spec.Linux
		lin.CgroupsPath = pod.CgroupName(s.m.UUID) + "/post-" + a.Name
		hs.Linux = &lin
	}
	id := "post-" + a.Name
	cfg, err := libcontainerConfig(id, &hs)
	if err != nil {
		return err
	}
	c, err := libcontainer.Create(s.dir.ContainersDir(), id, cfg)
	if err != nil {
		return err
	}
	defer c.Destroy()
	p := &libcontainer.Process{
		Args: proc.Args, Env: proc.Env, Cwd: proc.Cwd,
		UID: int(proc.User.UID), GID: int(proc.User.GID),
		Stdout: os.Stdout, Stderr: os.Stderr, Init: true,
	}
	if err := c.Run(p); err != nil {
		return err
	}
	ps, err := p.Wait()
	if code := exitCode(ps, err); code != 0 {
		return fmt.Errorf("exit status %d", code)
	}
	return nil
}
