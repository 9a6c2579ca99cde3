// Package vm is the VM test harness: a small Debian system with systemd and
// the freshly built orbit, booted under QEMU and driven over a serial port.
//
// The lifecycle has three stages, each cached apart so that only what
// changed is redone:
//
//   - Rootfs: debootstrap (minbase, plus Packages) into a directory, packed
//     as a tarball under the cache directory, named by a hash of the suite,
//     mirror and package list. Minutes when cold; reused until the list changes.
//   - Image: the tarball unpacked, the harness's files (agent, units, orbit's
//     binaries, stage1.d) laid over it, and a raw ext4 image made from the
//     directory with mkfs.ext4 -d (no loop mount). Named by a hash of
//     everything that went in; seconds when cold.
//   - Machine: one boot of an Image under qemu-system-x86_64 with Debian's
//     kernel booted directly, the disk a qcow2 overlay of its own so the
//     cached image stays pristine. The guest runs an agent on its second
//     serial port (ttyS1) that runs the commands the host sends and frames
//     their output and exit status; the first (ttyS0) is the console.
//
// A Machine is killed, and its overlay removed, by Close whatever state it
// is in; tests call it from t.Cleanup.
package vm

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
)

// ReadyMarker is what the guest agent writes, on the console and on its own
// port, once it reads commands.
const ReadyMarker = "ORBIT-VM-READY"

// DefaultMirror is the Debian mirror apt on the build machine uses.
const DefaultMirror = "http://deb.debian.org/debian"

// DefaultSuite is the Debian release of the image.
const DefaultSuite = "bookworm"

// DefaultPackages are installed on top of debootstrap's minbase: systemd as
// PID 1 with its bus, the tools tests use, and orbit's run-time libraries.
func DefaultPackages() []string {
	return []string{"systemd", "systemd-sysv", "dbus", "iproute2", "libseccomp2", "kmod", "udev",
		// systemd-machined, which pods register with.
		"systemd-container"}
}

// hashOf names a cached artifact by its inputs.
type hashOf struct{ h io.Writer }

func newHash() (*hashOf, func() string) {
	h := sha256.New()
	return &hashOf{h}, func() string { return hex.EncodeToString(h.Sum(nil))[:16] }
}

func (k *hashOf) add(parts ...string) {
	for _, p := range parts {
		fmt.Fprintf(k.h, "%d:%s;", len(p), p)
	}
}

// addFile hashes a file's mode and content (not its host path: the same
// build reached by another path makes the same image).
func (k *hashOf) addFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	k.add(fi.Mode().String())
	_, err = io.Copy(k.h, f)
	return err
}
