package stage1

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/opencontainers/runc/libcontainer"
	"golang.org/x/sys/unix"

	"github.com/orbit-pods/orbit/pod"
	"github.com/orbit-pods/orbit/pod/state"
)

// GC releases what a pod may still hold when its supervisor is gone:
// containers (killed and destroyed, apps before the init), mounts under the
// pod directory, and the pod's cgroup. It is safe to run on a pod that was
// torn down cleanly, and more than once. The caller holds the pod's lock.
func GC(dir pod.Dir, uuid string) error {
	var errs []error
	ents, err := os.ReadDir(dir.ContainersDir())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	// Apps first: killing the init first would kill them anyway, but then
	// libcontainer could not tell their cgroups were theirs.
	slices.SortFunc(ents, func(a, b os.DirEntry) int {
		return boolInt(a.Name() == "init") - boolInt(b.Name() == "init")
	})
	for _, e := range ents {
		c, err := libcontainer.Load(dir.ContainersDir(), e.Name())
		if err != nil {
			// A state directory with no state.json: the container was never
			// started. Nothing runs in it.
			os.RemoveAll(filepath.Join(dir.ContainersDir(), e.Name()))
			continue
		}
		if err := c.Signal(unix.SIGKILL); err != nil && !errors.Is(err, libcontainer.ErrNotRunning) {
			errs = append(errs, fmt.Errorf("kill container %s: %w", e.Name(), err))
		}
		// The processes are not our children: wait for the kill to land.
		for i := 0; i < 200; i++ {
			if st, err := c.Status(); err != nil || st == libcontainer.Stopped {
				break
			}
			time.Sleep(25 * time.Millisecond)
		}
		if err := c.Destroy(); err != nil {
			errs = append(errs, fmt.Errorf("destroy container %s: %w", e.Name(), err))
		}
	}
	if err := gcNetwork(dir); err != nil {
		errs = append(errs, err)
	}
	if err := state.UnmountUnder(string(dir)); err != nil {
		errs = append(errs, err)
	}
	if err := removePodCgroup(dir, uuid); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
