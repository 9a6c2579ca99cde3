package update

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/orbit-pods/orbit/os/slot"
	"github.com/orbit-pods/orbit/os/update/payload"
)

// partialSuffix marks a kernel file still being written; such files are
// removed on failure and before each apply.
const partialSuffix = ".orbit-partial"

// Target is where an update goes: the machine's slots and its ESP.
type Target struct {
	Slots  slot.Store // the disk's GPT and the loader's environment block
	Active string     // the running slot, A or B: never written
	ESP    string     // the mounted EFI system partition
	// KernelDir returns the directory on the ESP holding a slot's vmlinuz,
	// initramfs.img and slot.cfg; nil means ESP/A and ESP/B, where the
	// OS's GRUB configuration loads them from (docs/os.md).
	KernelDir func(slotName string) string
	Tries     int // boots the new slot gets to reach its target; 0 means 3
	Keys      []ed25519.PublicKey
}

// Kernel file names in a slot's kernel directory, by role.
var kernelNames = map[string]string{payload.RoleKernel: "vmlinuz", payload.RoleInitrd: "initramfs.img", payload.RoleSlotCfg: "slot.cfg"}

func (t *Target) kernelDir(name string) string {
	if t.KernelDir != nil {
		return t.KernelDir(name)
	}
	return filepath.Join(t.ESP, name)
}

// Passive is the slot an update is written to.
func (t *Target) Passive() (string, error) {
	if !slot.Valid(t.Active) {
		return "", fmt.Errorf("running slot %q is not A or B", t.Active)
	}
	return slot.Other(t.Active), nil
}

// ErrNoSpace is returned when the passive slot or the ESP cannot hold the payload.
var ErrNoSpace = errors.New("not enough space")

// Apply streams a payload into the passive slot and the ESP, verifies it
// and sets the passive slot to boot next. want, if not nil, is the SHA-256
// of the whole payload as the Omaha server gave it. Any failure leaves the
// slot metadata as it was and removes the kernel files half written.
func (t *Target) Apply(r io.Reader, want []byte) (m *payload.Manifest, err error) {
	passive, err := t.Passive()
	if err != nil {
		return nil, err
	}
	d, err := slot.Open(t.Slots.Disk, false)
	if err != nil {
		return nil, err
	}
	start, size, err := d.PartitionOffset(passive)
	d.Close()
	if err != nil {
		return nil, err
	}
	kdir := t.kernelDir(passive)
	if err := removePartials(kdir); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			if rerr := removePartials(kdir); rerr != nil {
				err = fmt.Errorf("%w (and %v)", err, rerr)
			}
		}
	}()

	whole := sha256.New()
	tee := io.TeeReader(r, whole)
	pr, err := payload.NewReader(tee, t.Keys)
	if err != nil {
		return nil, err
	}
	m = pr.Manifest
	if err := t.checkSpace(m, size, kdir); err != nil {
		return m, err
	}
	disk, err := os.OpenFile(t.Slots.Disk, os.O_RDWR, 0)
	if err != nil {
		return m, fmt.Errorf("open %s to write slot %s: %w", t.Slots.Disk, passive, err)
	}
	defer disk.Close()
	for {
		f, fr, err := pr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return m, err
		}
		if f.Role == payload.RoleUsr {
			if _, err := io.Copy(io.NewOffsetWriter(disk, start), fr); err != nil {
				return m, fmt.Errorf("write slot %s: %w", passive, err)
			}
			if err := disk.Sync(); err != nil {
				return m, fmt.Errorf("write slot %s: %w", passive, err)
			}
			continue
		}
		if err := writeFile(filepath.Join(kdir, kernelNames[f.Role]+partialSuffix), fr); err != nil {
			return m, err
		}
	}
	// The rest of the stream (the tar's end) counts in Omaha's digest.
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return m, fmt.Errorf("read payload: %w", err)
	}
	if got := whole.Sum(nil); want != nil && !bytes.Equal(got, want) {
		return m, fmt.Errorf("%w: the payload's SHA-256 is %x, the update server said %x", payload.ErrCorrupt, got, want)
	}
	if err := t.verifyWritten(m, disk, start, kdir); err != nil {
		return m, err
	}
	if err := t.install(m, kdir); err != nil {
		return m, err
	}
	tries := t.Tries
	if tries == 0 {
		tries = 3
	}
	if err := t.Slots.SetNext(passive, tries); err != nil {
		return m, err
	}
	return m, nil
}

func (t *Target) checkSpace(m *payload.Manifest, slotSize int64, kdir string) error {
	usr, _ := m.File(payload.RoleUsr)
	if usr.Size > slotSize {
		return fmt.Errorf("%w: the /usr image is %d bytes, the slot %d", ErrNoSpace, usr.Size, slotSize)
	}
	if err := os.MkdirAll(kdir, 0o755); err != nil {
		return fmt.Errorf("kernel directory on the ESP: %w", err)
	}
	var need int64
	for _, f := range m.Files {
		if f.Role != payload.RoleUsr {
			need += f.Size
		}
	}
	var st unix.Statfs_t
	if err := unix.Statfs(kdir, &st); err != nil {
		return fmt.Errorf("free space on the ESP: %w", err)
	}
	if free := int64(st.Bavail) * int64(st.Bsize); free < need {
		return fmt.Errorf("%w: the kernel files need %d bytes, %s has %d free", ErrNoSpace, need, kdir, free)
	}
	return nil
}

func writeFile(path string, r io.Reader) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}

// verifyWritten reads back what was written and hashes it again, so a
// write the disk lost or mangled is caught before the switch.
func (t *Target) verifyWritten(m *payload.Manifest, disk *os.File, start int64, kdir string) error {
	for _, f := range m.Files {
		var r io.Reader
		if f.Role == payload.RoleUsr {
			r = io.NewSectionReader(disk, start, f.Size)
		} else {
			kf, err := os.Open(filepath.Join(kdir, kernelNames[f.Role]+partialSuffix))
			if err != nil {
				return fmt.Errorf("verify %s: %w", f.Name, err)
			}
			defer kf.Close()
			r = kf
		}
		h := sha256.New()
		n, err := io.Copy(h, r)
		if err != nil {
			return fmt.Errorf("verify %s: %w", f.Name, err)
		}
		if got := hex.EncodeToString(h.Sum(nil)); n != f.Size || got != f.SHA256 {
			return fmt.Errorf("%w: %s read back as %d bytes with sha256 %s", payload.ErrCorrupt, f.Name, n, got)
		}
	}
	return nil
}

// install renames the verified kernel files into place; an initrd the
// new payload does not have is removed, so no old one boots the new kernel.
func (t *Target) install(m *payload.Manifest, kdir string) error {
	for role, name := range kernelNames {
		p := filepath.Join(kdir, name)
		if _, ok := m.File(role); ok {
			if err := os.Rename(p+partialSuffix, p); err != nil {
				return fmt.Errorf("install %s: %w", name, err)
			}
		} else if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("remove old %s: %w", name, err)
		}
	}
	dir, err := os.Open(kdir)
	if err != nil {
		return err
	}
	defer dir.Close()
	return dir.Sync()
}

func removePartials(kdir string) error {
	for _, name := range kernelNames {
		if err := os.Remove(filepath.Join(kdir, name+partialSuffix)); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("remove partial kernel file: %w", err)
		}
	}
	return nil
}
