package stage1

import (
	"fmt"
	"io"
	"os"
	"os/signal"

	"github.com/opencontainers/runc/libcontainer"
	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/orbit-pods/orbit/pod"
)

// Enter runs args inside a running app: in its namespaces, root, cgroup
// and with its capabilities, as its user, with this process's stdio. It
// returns the command's exit status.
func Enter(dir pod.Dir, app string, args []string) (int, error) {
	m, err := pod.ReadManifest(dir.ManifestFile())
	if err != nil {
		return 1, err
	}
	var a *pod.App
	for i := range m.Apps {
		if m.Apps[i].Name == app {
			a = &m.Apps[i]
		}
	}
	if a == nil {
		return 1, fmt.Errorf("pod %s has no app %q", m.UUID, app)
	}
	c, err := libcontainer.Load(dir.ContainersDir(), "app-"+app)
	if err != nil {
		return 1, fmt.Errorf("app %s is not running: %w", app, err)
	}
	if st, err := c.Status(); err != nil || st != libcontainer.Running {
		return 1, fmt.Errorf("app %s is not running (%v)", app, st)
	}
	groups := make([]int, 0, len(a.Process.User.AdditionalGids))
	for _, g := range a.Process.User.AdditionalGids {
		groups = append(groups, int(g))
	}
	p := &libcontainer.Process{
		Args:             args,
		Env:              a.Process.Env,
		UID:              int(a.Process.User.UID),
		GID:              int(a.Process.User.GID),
		AdditionalGroups: groups,
		Cwd:              a.Process.Cwd,
	}
	// On a terminal the command gets a pty of its own, as an interactive
	// app does; else this process's stdio.
	var ours *os.File
	if term.IsTerminal(int(os.Stdin.Fd())) {
		if ours, err = withConsole(p); err != nil {
			return 1, err
		}
	} else {
		p.Stdin, p.Stdout, p.Stderr = os.Stdin, os.Stdout, os.Stderr
	}
	if err := c.Run(p); err != nil {
		if ours != nil {
			p.ConsoleSocket.Close()
			ours.Close()
		}
		return 1, fmt.Errorf("enter app %s: %w", app, err)
	}
	// Whoever ran enter ends the command by ending enter (a CRI exec's
	// timeout): the command, in the container's PID namespace, is no
	// child of anything that would go with it.
	stopSigs := make(chan os.Signal, 1)
	signal.Notify(stopSigs, unix.SIGTERM, unix.SIGHUP)
	defer signal.Stop(stopSigs)
	go func() {
		if _, ok := <-stopSigs; ok {
			_ = p.Signal(unix.SIGKILL)
		}
	}()
	var r *relay
	if ours != nil {
		if r, err = receiveConsole(p, ours, nopCloser{io.Discard}); err != nil {
			_ = p.Signal(unix.SIGKILL)
			_, _ = p.Wait()
			return 1, err
		}
	}
	ps, err := p.Wait()
	if r != nil {
		r.close()
	}
	return exitCode(ps, err), nil
}
