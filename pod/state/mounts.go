package state

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// Unmount detaches every mount at or below the pod's directory in this
// mount namespace, deepest first: what a pod can leave in the host's
// namespace (its netns file) when whoever made it died before stage1 could
// release it. Remove does it before deleting.
func (p *Pod) Unmount() error {
	return UnmountUnder(string(p.Dir()))
}

// UnmountUnder detaches every mount at or below root, deepest first.
func UnmountUnder(root string) error {
	root = filepath.Clean(root)
	ms, err := mountinfo.GetMounts(func(m *mountinfo.Info) (skip, stop bool) {
		return !(m.Mountpoint == root || strings.HasPrefix(m.Mountpoint, root+"/")), false
	})
	if err != nil {
		return fmt.Errorf("read mounts: %w", err)
	}
	slices.SortFunc(ms, func(a, b *mountinfo.Info) int { return len(b.Mountpoint) - len(a.Mountpoint) })
	var errs []error
	for _, m := range ms {
		if err := unix.Unmount(m.Mountpoint, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", m.Mountpoint, err))
		}
	}
	return errors.Join(errs...)
}
