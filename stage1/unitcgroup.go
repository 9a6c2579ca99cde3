package stage1

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/containerd/cgroups/v3"
)

// On a pure cgroup v2 hierarchy a cgroup that hands controllers to its
// children may hold no processes itself ("no internal processes"), and
// libcontainer places a relatively named cgroup beside the caller's own
// cgroup (under its parent), not inside it. So that a pod lands inside the
// unit that runs it (Delegate=yes), stage1 first moves itself into a leaf
// of its own cgroup, <unit>/supervisor: the pod's cgroup is then
// <unit>/orbit-<uuid>, a sibling of the leaf, and the unit's cgroup holds
// no process of its own. When stage1 shares its cgroup with other
// processes (a login shell's scope, a service that runs orbit among other
// things) it stays where it is and the pod goes beside that cgroup, as
// libcontainer would put it anyway.

// supervisorLeaf is the leaf cgroup the supervisor moves into.
const supervisorLeaf = "supervisor"

// unifiedRoot is where the cgroup v2 hierarchy is mounted.
const unifiedRoot = "/sys/fs/cgroup"

// enterSupervisorLeaf moves this process into <own cgroup>/supervisor when
// the hierarchy is cgroup v2 only and this process is alone in its cgroup.
// It returns the cgroup it moved to, or "" when it stayed.
func enterSupervisorLeaf() (string, error) {
	if cgroups.Mode() != cgroups.Unified {
		return "", nil
	}
	_, own, err := cgroups.ParseCgroupFileUnified("/proc/self/cgroup")
	if err != nil {
		return "", fmt.Errorf("read own cgroup: %w", err)
	}
	if own == "/" || own == "" || filepath.Base(own) == supervisorLeaf {
		return "", nil
	}
	dir := filepath.Join(unifiedRoot, own)
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return "", fmt.Errorf("read processes of cgroup %s: %w", own, err)
	}
	me := strconv.Itoa(os.Getpid())
	if procs := strings.Fields(string(b)); len(procs) != 1 || procs[0] != me {
		return "", nil
	}
	leaf := filepath.Join(dir, supervisorLeaf)
	if err := os.Mkdir(leaf, 0o755); err != nil && !os.IsExist(err) {
		return "", fmt.Errorf("make the supervisor's cgroup %s: %w", leaf, err)
	}
	if err := os.WriteFile(filepath.Join(leaf, "cgroup.procs"), []byte(me), 0o644); err != nil {
		return "", fmt.Errorf("move the supervisor into %s: %w", leaf, err)
	}
	return filepath.Join(own, supervisorLeaf), nil
}
