// Package idmap makes idmapped mounts (mount_setattr(2) with
// MOUNT_ATTR_IDMAP): clones of a directory whose files' owners are seen
// through the ID mappings of a user namespace, and checks that a host can
// make them.
package idmap

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Clone mounts a clone of src, mapped with the user namespace userns, at
// dst, which it creates. A read-only clone stays so even to the host's
// root.
func Clone(src, dst string, userns *os.File, readOnly bool) error {
	fd, err := mappedTree(src, userns, readOnly)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return err
	}
	if err := unix.MoveMount(fd, "", unix.AT_FDCWD, dst, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("mount the mapped %s at %s: %w", src, dst, err)
	}
	return nil
}

// mappedTree is a detached, mapped clone of src.
func mappedTree(src string, userns *os.File, readOnly bool) (int, error) {
	fd, err := unix.OpenTree(unix.AT_FDCWD, src, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("clone %s: %w", src, err)
	}
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(userns.Fd())}
	if readOnly {
		attr.Attr_set |= unix.MOUNT_ATTR_RDONLY
	}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &attr); err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
			return -1, fmt.Errorf("map the IDs of %s: its filesystem does not support idmapped mounts (Linux 5.12 or later, and a filesystem that has them: ext4, xfs or btrfs; tmpfs from Linux 6.3): %w", src, err)
		}
		return -1, fmt.Errorf("map the IDs of %s: %w", src, err)
	}
	return fd, nil
}

// Probe checks that pods in user namespaces can have their roots under
// dir: the kernel makes overlays of idmapped layers (Linux 5.19), dir's
// filesystem takes idmapped mounts, and any user may pass through dir
// and the directories above it (CheckPassable). helper is a program that runs
// until its descriptor 3 reads end-of-file (orbit-pod-init): it holds the
// user namespace the check maps with. Nothing is mounted.
func Probe(dir, helper string) error {
	if err := kernelAtLeast(5, 19); err != nil {
		return err
	}
	if err := CheckPassable(dir); err != nil {
		return err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer w.Close()
	cmd := exec.Command(helper)
	cmd.ExtraFiles = []*os.File{r}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  unix.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 65536, Size: 65536}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 65536, Size: 65536}},
	}
	err = cmd.Start()
	r.Close()
	if err != nil {
		return fmt.Errorf("make a user namespace: %w", err)
	}
	defer func() {
		w.Close()
		_ = cmd.Wait()
	}()
	userns, err := os.Open("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/ns/user")
	if err != nil {
		return fmt.Errorf("make a user namespace: %w", err)
	}
	defer userns.Close()
	fd, err := mappedTree(dir, userns, true)
	if err != nil {
		return err
	}
	unix.Close(fd)
	return nil
}

// CheckPassable checks that dir and every directory above it let any
// user through (o+x), as /var/lib does: a pod's root, an unprivileged
// host user, passes through them to its own directory.
func CheckPassable(dir string) error {
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return err
		}
		if st.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("a pod in a user namespace needs the directories above its own to let any user through, and %s does not (mode %#o; chmod o+x)", d, st.Mode().Perm())
		}
		if d == "/" {
			return nil
		}
	}
}

// kernelAtLeast checks the running kernel's version.
func kernelAtLeast(major, minor int) error {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return err
	}
	rel := string(u.Release[:bytes.IndexByte(u.Release[:], 0)])
	if !releaseAtLeast(rel, major, minor) {
		return fmt.Errorf("kernel %s: overlays of idmapped layers need Linux %d.%d or later", rel, major, minor)
	}
	return nil
}

// releaseAtLeast says whether a kernel release (6.1.0-18-amd64) is
// major.minor or later.
func releaseAtLeast(rel string, major, minor int) bool {
	parts := strings.SplitN(rel, ".", 3)
	if len(parts) < 2 {
		return false
	}
	maj, err1 := strconv.Atoi(parts[0])
	digits := strings.IndexFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' })
	if digits < 0 {
		digits = len(parts[1])
	}
	mnr, err2 := strconv.Atoi(parts[1][:digits])
	if err1 != nil || err2 != nil {
		return false
	}
	return maj > major || maj == major && mnr >= minor
}
