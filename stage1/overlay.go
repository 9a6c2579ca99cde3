package stage1

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// mountOverlay mounts an overlay of lowers (lowest first) with upper and
// work at target. It uses the new mount API's "lowerdir+" (Linux 6.8+),
// which takes one layer per call and so has no limit on the number or path
// length of layers; on older kernels it falls back to mount(2), whose
// options must fit in a page.
func mountOverlay(lowers []string, upper, work, target string) error {
	err := mountOverlayFsconfig(lowers, upper, work, target)
	if err == nil {
		return nil
	}
	if !errors.Is(err, errNoLowerdirPlus) {
		return err
	}
	// mount(2) wants the top layer first.
	rev := make([]string, len(lowers))
	for i, l := range lowers {
		if strings.ContainsAny(l, ":,") {
			return fmt.Errorf("overlay layer path %q contains ':' or ','", l)
		}
		rev[len(lowers)-1-i] = l
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", strings.Join(rev, ":"), upper, work)
	if len(opts) >= os.Getpagesize() {
		return fmt.Errorf("overlay of %d layers: mount options are %d bytes, the kernel takes fewer than %d (a kernel with lowerdir+ support, 6.8 or later, has no such limit)", len(lowers), len(opts), os.Getpagesize())
	}
	if err := unix.Mount("overlay", target, "overlay", 0, opts); err != nil {
		return fmt.Errorf("mount overlay at %s: %w", target, err)
	}
	return nil
}

var errNoLowerdirPlus = errors.New("kernel has no overlay lowerdir+")

func mountOverlayFsconfig(lowers []string, upper, work, target string) error {
	fd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		if errors.Is(err, unix.ENOSYS) {
			return errNoLowerdirPlus
		}
		if errors.Is(err, unix.ENODEV) {
			return fmt.Errorf("overlayfs is not available in this kernel (modprobe overlay): %w", err)
		}
		return fmt.Errorf("fsopen overlay: %w", err)
	}
	defer unix.Close(fd)
	// lowerdir+ appends a layer above those given before it: top first.
	for i := len(lowers) - 1; i >= 0; i-- {
		if err := unix.FsconfigSetString(fd, "lowerdir+", lowers[i]); err != nil {
			if errors.Is(err, unix.EINVAL) && i == len(lowers)-1 {
				return errNoLowerdirPlus
			}
			return fmt.Errorf("overlay layer %s: %w", lowers[i], err)
		}
	}
	if err := unix.FsconfigSetString(fd, "upperdir", upper); err != nil {
		return fmt.Errorf("overlay upperdir %s: %w", upper, err)
	}
	if err := unix.FsconfigSetString(fd, "workdir", work); err != nil {
		return fmt.Errorf("overlay workdir %s: %w", work, err)
	}
	if err := unix.FsconfigCreate(fd); err != nil {
		// Before 6.5 overlayfs had no fs_context of its own: the kernel
		// takes any key above as a legacy option and only rejects
		// "lowerdir+" here, with EINVAL (found booting Debian's 6.1 in the
		// VM harness). mount(2) then either works or fails with the real cause.
		if errors.Is(err, unix.EINVAL) {
			return errNoLowerdirPlus
		}
		return fmt.Errorf("create overlay for %s: %w", target, err)
	}
	mfd, err := unix.Fsmount(fd, unix.FSMOUNT_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("fsmount overlay: %w", err)
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("mount overlay at %s: %w", target, err)
	}
	return nil
}
