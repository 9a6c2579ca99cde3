package network

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// CreateNetNS makes a fresh network namespace with loopback up and keeps it
// at path (a bind mount of the namespace), so that it outlives the
// processes in it and gc can find it. It must run in the host's mount
// namespace: a bind mount made in the pod's private one would vanish with
// stage1, and gc could not reach it.
func CreateNetNS(path string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		return fmt.Errorf("create netns file: %w", err)
	}
	f.Close()
	errc := make(chan error, 1)
	// Network namespaces are per thread: make it on a thread of its own,
	// which is thrown away (left locked) if it cannot be brought back.
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("new network namespace: %w", err)
			return
		}
		err = unix.Mount("/proc/thread-self/ns/net", path, "", unix.MS_BIND, "")
		if err != nil {
			err = fmt.Errorf("bind-mount network namespace to %s: %w", path, err)
		} else if err = loopbackUp(); err != nil {
			err = fmt.Errorf("bring up loopback: %w", err)
		}
		if serr := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); serr != nil {
			errc <- errors.Join(err, fmt.Errorf("return to the host network namespace: %w", serr))
			return // the thread stays locked and dies with the goroutine
		}
		runtime.UnlockOSThread()
		errc <- err
	}()
	if err := <-errc; err != nil {
		_ = RemoveNetNS(path)
		return err
	}
	return nil
}

func loopbackUp() error {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return err
	}
	return netlink.LinkSetUp(lo)
}

// IsNetNS reports whether path is a network namespace (a mounted one, not
// the empty file left when it is unmounted).
func IsNetNS(path string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false
	}
	return st.Type == unix.NSFS_MAGIC
}

// RemoveNetNS unmounts and removes the netns file at path; the namespace
// goes when nothing else holds it. A missing file is not an error.
func RemoveNetNS(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	return nil
}

// BindNetNS makes path, a new file, a mount of the network namespace ns,
// as CreateNetNS does for a namespace it makes.
func BindNetNS(path string, ns *os.File) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		return fmt.Errorf("create netns file: %w", err)
	}
	f.Close()
	src := "/proc/self/fd/" + strconv.Itoa(int(ns.Fd()))
	if err := unix.Mount(src, path, "", unix.MS_BIND, ""); err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("bind-mount network namespace to %s: %w", path, err)
	}
	return nil
}
