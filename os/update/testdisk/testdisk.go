// Package testdisk makes what update tests apply payloads to: a real GPT
// disk image file (ESP, USR-A, USR-B, ROOT, partitioned by sgdisk), the
// loader's environment block, and a directory standing for the mounted
// ESP, with slot A running and good. It also makes signed payloads of
// generated /usr images and kernels.
package testdisk

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/orbit-pods/orbit/os/slot"
	"github.com/orbit-pods/orbit/os/update/payload"
)

// SlotSize is the size of each /usr slot on a test disk.
const SlotSize = 8 << 20

// Machine is a test machine's disk and ESP.
type Machine struct {
	Dir  string
	Disk string // GPT image file
	Env  string // GRUB environment block
	ESP  string // directory standing for the mounted ESP
}

// Store is the machine's slot store.
func (m *Machine) Store() slot.Store { return slot.Store{Disk: m.Disk, Env: m.Env} }

// New makes a machine in dir: slot A holds fill bytes of 0xAA, is good and
// boots; slot B is empty and not bootable.
func New(dir string) (*Machine, error) {
	m := &Machine{Dir: dir, Disk: filepath.Join(dir, "disk.raw"), Env: filepath.Join(dir, "esp", "grub", "grubenv"), ESP: filepath.Join(dir, "esp")}
	if err := os.MkdirAll(filepath.Dir(m.Env), 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(m.Disk, nil, 0o644); err != nil {
		return nil, err
	}
	if err := os.Truncate(m.Disk, 2*SlotSize+8<<20); err != nil {
		return nil, err
	}
	mb := fmt.Sprintf("+%dM", SlotSize>>20)
	out, err := exec.Command("sgdisk", "-o",
		"-n", "1:2048:+2M", "-c", "1:EFI-SYSTEM", "-t", "1:ef00",
		"-n", "3:0:"+mb, "-c", "3:USR-A", "-A", "3:set:48", "-A", "3:set:56",
		"-n", "4:0:"+mb, "-c", "4:USR-B",
		"-n", "9:0:0", "-c", "9:ROOT", m.Disk).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("sgdisk: %v: %s", err, out)
	}
	e := slot.Env{}
	e.SetSlot(slot.Slot{Name: slot.A, Priority: 1, Successful: true})
	e.SetSlot(slot.Slot{Name: slot.B})
	b, err := e.Format()
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(m.Env, b, 0o644); err != nil {
		return nil, err
	}
	d, err := slot.Open(m.Disk, false)
	if err != nil {
		return nil, err
	}
	start, size, err := d.PartitionOffset(slot.A)
	d.Close()
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(m.Disk, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.WriteAt(bytes.Repeat([]byte{0xAA}, int(size)), start); err != nil {
		return nil, err
	}
	return m, nil
}

// SlotTable returns the bytes that hold slot metadata: the primary GPT
// (LBA 0–33), the backup GPT (the last 33 sectors) and the environment
// block, to compare before and after.
func (m *Machine) SlotTable() ([]byte, error) {
	b, err := os.ReadFile(m.Disk)
	if err != nil {
		return nil, err
	}
	env, err := os.ReadFile(m.Env)
	if err != nil {
		return nil, err
	}
	out := append([]byte(nil), b[:34*512]...)
	out = append(out, b[len(b)-33*512:]...)
	return append(out, env...), nil
}

// SlotBytes returns the first n bytes of a slot's partition.
func (m *Machine) SlotBytes(name string, n int64) ([]byte, error) {
	d, err := slot.Open(m.Disk, false)
	if err != nil {
		return nil, err
	}
	start, _, err := d.PartitionOffset(name)
	d.Close()
	if err != nil {
		return nil, err
	}
	f, err := os.Open(m.Disk)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, n)
	_, err = f.ReadAt(b, start)
	return b, err
}

// Inputs writes a /usr image of usrSize pseudo-random bytes (seeded, so
// versions differ), a kernel, an initramfs and a slot.cfg into dir.
func Inputs(dir, version string, usrSize int) ([]payload.Input, error) {
	seed := sha256.Sum256([]byte(version))
	r := rand.New(rand.NewChaCha8(seed))
	files := []struct {
		role string
		size int
	}{{payload.RoleUsr, usrSize}, {payload.RoleKernel, 64 << 10}, {payload.RoleInitrd, 32 << 10}, {payload.RoleSlotCfg, 100}}
	var in []payload.Input
	for _, f := range files {
		b := make([]byte, f.size)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		p := filepath.Join(dir, version+"-"+f.role)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return nil, err
		}
		in = append(in, payload.Input{Role: f.role, Path: p})
	}
	return in, nil
}

// Keys makes a key pair, writing the public key as dir/update.pem.
func Keys(dir string) (priv []byte, err error) {
	sk, pk, err := payload.GenerateKey()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return sk, os.WriteFile(filepath.Join(dir, "update.pem"), pk, 0o644)
}
