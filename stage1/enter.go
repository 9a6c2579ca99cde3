package stage1

import (
	"fmt"
	"os"

	"github.com/opencontainers/runc/libcontainer"

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
		Stdin:            os.Stdin,
		Stdout:           os.Stdout,
		Stderr:           os.Stderr,
	}
	if err := c.Run(p); err != nil {
		return 1, fmt.Errorf("enter app %s: %w", app, err)
	}
	ps, err := p.Wait()
	return exitCode(ps, err), nil
}
