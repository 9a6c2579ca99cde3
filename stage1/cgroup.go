package stage1

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	"github.com/moby/sys/mountinfo"
	"github.com/opencontainers/runc/libcontainer"
	"golang.org/x/sys/unix"

	"github.com/orbit-pods/orbit/pod"
)

// The pod's cgroup is nested under the cgroups stage1 was started in (a
// unit's, with Delegate=yes, or the shell's): libcontainer creates each
// app's cgroup relative to them. stage1 records where it was started
// (a copy of /proc/self/cgroup) so that gc, run from anywhere, finds the
// pod's cgroup again.

func parentCgroupFile(dir pod.Dir) string { return filepath.Join(dir.Stage1Dir(), "parent-cgroup") }

func recordParentCgroup(dir pod.Dir) error {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return fmt.Errorf("read own cgroup: %w", err)
	}
	if err := os.MkdirAll(dir.Stage1Dir(), 0o755); err != nil {
		return err
	}
	return os.WriteFile(parentCgroupFile(dir), b, 0o644)
}

// podCgroupPaths returns, per v1 subsystem and for the unified hierarchy,
// the pod cgroup's path below the hierarchy's root.
func podCgroupPaths(dir pod.Dir, uuid string) (map[string]string, string, error) {
	f := parentCgroupFile(dir)
	parents, unified, err := cgroups.ParseCgroupFileUnified(f)
	if err != nil {
		return nil, "", fmt.Errorf("read %s: %w", f, err)
	}
	out := map[string]string{}
	for k, v := range parents {
		out[k] = filepath.Join(v, pod.CgroupName(uuid))
	}
	if cgroups.Mode() == cgroups.Unified {
		// libcontainer's cgroup v2 manager puts a relative cgroup under
		// the parent of the caller's own (unitcgroup.go).
		unified = filepath.Dir(unified)
	}
	return out, filepath.Join(unified, pod.CgroupName(uuid)), nil
}

// removePodCgroup kills whatever is left in the pod's cgroup and removes
// it, in every hierarchy.
func removePodCgroup(dir pod.Dir, uuid string) error {
	paths, unified, err := podCgroupPaths(dir, uuid)
	if errors.Is(err, os.ErrNotExist) {
		return nil // stage1 never got as far as making it
	}
	if err != nil {
		return err
	}
	var errs []error
	if cgroups.Mode() == cgroups.Unified {
		m, err := cgroup2.Load(unified)
		if err == nil {
			_ = m.Kill()
			err = m.Delete()
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove pod cgroup %s: %w", unified, err))
		}
		return errors.Join(errs...)
	}
	// Normally the containers' own teardown emptied the pod's cgroup; after
	// a supervisor died, something may be left: freeze, kill, thaw. This
	// is best effort; removing the directories below is what must succeed.
	if cg, err := cgroup1.Load(func(sub cgroup1.Name) (string, error) {
		p, ok := paths[string(sub)]
		if !ok {
			return "", cgroup1.ErrControllerNotActive
		}
		return p, nil
	}); err == nil {
		_ = cg.Freeze()
		procs, _ := cg.Processes(cgroup1.Devices, true)
		for _, p := range procs {
			_ = killPID(p.Pid)
		}
		_ = cg.Thaw()
	}
	// Every hierarchy, the named ones (name=systemd) included, and in
	// hybrid mode the unified one too.
	mounts, err := v1Mounts()
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for key, p := range paths {
		if mnt, ok := mounts[key]; ok {
			if err := removeTree(filepath.Join(mnt, p)); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if cgroups.Mode() == cgroups.Hybrid {
		if err := removeTree(filepath.Join("/sys/fs/cgroup/unified", unified)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// removeTree removes an empty cgroup directory tree, children first.
func removeTree(p string) error {
	ents, err := os.ReadDir(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.IsDir() {
			if err := removeTree(filepath.Join(p, e.Name())); err != nil {
				return err
			}
		}
	}
	// A killed process leaves its cgroup a moment after it dies.
	for i := 0; i < 100; i++ {
		if err = os.Remove(p); err == nil || errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("remove cgroup %s: %w", p, err)
}

func killPID(pid int) error { return unix.Kill(pid, unix.SIGKILL) }

// v1Mounts maps each v1 hierarchy, named as /proc/self/cgroup names it
// ("memory", "name=systemd"), to where it is mounted.
func v1Mounts() (map[string]string, error) {
	ms, err := mountinfo.GetMounts(mountinfo.FSTypeFilter("cgroup"))
	if err != nil {
		return nil, fmt.Errorf("read cgroup mounts: %w", err)
	}
	out := map[string]string{}
	for _, m := range ms {
		for _, opt := range strings.Split(m.VFSOptions, ",") {
			if opt != "rw" && opt != "ro" {
				out[opt] = m.Mountpoint
			}
		}
	}
	return out, nil
}

// oomKilled reports whether the kernel's OOM killer killed a process in
// the container's cgroup (the oom_kill counter of memory.oom_control in v1,
// memory.events in v2).
func oomKilled(c *libcontainer.Container) bool {
	st, err := c.State()
	if err != nil {
		return false
	}
	var file string
	if p, ok := st.CgroupPaths["memory"]; ok {
		file = filepath.Join(p, "memory.oom_control")
	} else if p, ok := st.CgroupPaths[""]; ok {
		file = filepath.Join(p, "memory.events")
	} else {
		return false
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if n, ok := strings.CutPrefix(l, "oom_kill "); ok {
			return strings.TrimSpace(n) != "0"
		}
	}
	return false
}
