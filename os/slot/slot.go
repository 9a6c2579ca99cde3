// Package slot keeps the A/B /usr slot metadata of an Orbit OS disk.
//
// The metadata lives where Container Linux kept it: in the GPT attribute
// bits of the USR-A and USR-B partitions (priority in bits 48–51, tries
// left in 52–55, successful in 56). GRUB as Debian ships it cannot read
// those bits, so the boot loader keeps its own copy in its environment
// block on the ESP (see Env): it picks a slot from there and counts the
// tries down there. The functions here change both, the GPT first and the
// environment block last, so a crash in between leaves the loader on its
// old choice; MarkGood also brings the loader's counted-down tries back
// into the GPT.
package slot

import (
	"errors"
	"fmt"
	"os"

	"github.com/diskfs/go-diskfs/partition/gpt"
)

// The GPT attribute bits of a slot (Container Linux's layout).
const (
	priorityShift   = 48
	triesShift      = 52
	successfulShift = 56
	fieldMask       = 0xf
)

// MaxTries and MaxPriority are what four bits hold.
const (
	MaxTries    = 15
	MaxPriority = 15
)

// Names of the slots, and the GPT partition names that hold them.
const (
	A = "A"
	B = "B"
)

// Label is the GPT partition name of a slot: USR-A or USR-B.
func Label(name string) string { return "USR-" + name }

// Slot is one /usr slot's metadata.
type Slot struct {
	Name       string // A or B
	Index      int    // GPT partition number
	Priority   int    // 0–15; the loader prefers the highest
	Tries      int    // 0–15; boots left before a not yet successful slot is given up
	Successful bool   // booted to its target at least once
}

// Bootable says whether the loader may pick the slot.
func (s Slot) Bootable() bool { return s.Successful || s.Tries > 0 }

func (s Slot) String() string {
	return fmt.Sprintf("%s priority=%d tries=%d successful=%v", s.Name, s.Priority, s.Tries, s.Successful)
}

// FromAttributes reads a slot's fields from GPT attribute bits.
func FromAttributes(name string, attr uint64) Slot {
	return Slot{
		Name:       name,
		Priority:   int(attr >> priorityShift & fieldMask),
		Tries:      int(attr >> triesShift & fieldMask),
		Successful: attr>>successfulShift&1 == 1,
	}
}

// Attributes returns attr with the slot's bits replaced; the other bits
// (required, no-block-io, read-only and so on) are kept.
func (s Slot) Attributes(attr uint64) uint64 {
	attr &^= fieldMask<<priorityShift | fieldMask<<triesShift | 1<<successfulShift
	attr |= uint64(s.Priority&fieldMask)<<priorityShift | uint64(s.Tries&fieldMask)<<triesShift
	if s.Successful {
		attr |= 1 << successfulShift
	}
	return attr
}

// Pick is the loader's choice: the bootable slot with the highest priority,
// A on a tie. ok is false when neither is bootable.
func Pick(a, b Slot) (Slot, bool) {
	switch {
	case a.Bootable() && b.Bootable():
		if b.Priority > a.Priority {
			return b, true
		}
		return a, true
	case a.Bootable():
		return a, true
	case b.Bootable():
		return b, true
	}
	return Slot{}, false
}

// Other returns the name of the other slot.
func Other(name string) string {
	if name == A {
		return B
	}
	return A
}

// Valid says whether name is a slot's name.
func Valid(name string) bool { return name == A || name == B }

// Disk is the GPT of a disk (a block device or an image file).
type Disk struct {
	path  string
	f     *os.File
	size  int64
	table *gpt.Table
	parts map[string]*gpt.Partition
}

// Open reads the GPT of path and finds USR-A and USR-B in it; writable
// opens it for writing too.
func Open(path string, writable bool) (*Disk, error) {
	flag := os.O_RDONLY
	if writable {
		flag = os.O_RDWR
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, fmt.Errorf("open slot table: %w", err)
	}
	d := &Disk{path: path, f: f}
	if err := d.read(); err != nil {
		f.Close()
		return nil, err
	}
	return d, nil
}

func (d *Disk) read() error {
	size, err := d.f.Seek(0, 2)
	if err != nil {
		return fmt.Errorf("read slot table of %s: size: %w", d.path, err)
	}
	d.size = size
	t, err := gpt.Read(d.f, 512, 512)
	if err != nil {
		return fmt.Errorf("read slot table of %s: %w", d.path, err)
	}
	d.table = t
	d.parts = map[string]*gpt.Partition{}
	for _, p := range t.Partitions {
		if p.Type == gpt.Unused {
			continue
		}
		for _, n := range []string{A, B} {
			if p.Name == Label(n) {
				if d.parts[n] != nil {
					return fmt.Errorf("read slot table of %s: two partitions named %s", d.path, Label(n))
				}
				d.parts[n] = p
			}
		}
	}
	for _, n := range []string{A, B} {
		if d.parts[n] == nil {
			return fmt.Errorf("read slot table of %s: no partition named %s", d.path, Label(n))
		}
	}
	return nil
}

// Close closes the disk.
func (d *Disk) Close() error { return d.f.Close() }

// Slot returns a slot's metadata as the GPT has it.
func (d *Disk) Slot(name string) (Slot, error) {
	p, ok := d.parts[name]
	if !ok {
		return Slot{}, fmt.Errorf("no slot %q (want A or B)", name)
	}
	s := FromAttributes(name, p.Attributes)
	s.Index = p.Index
	return s, nil
}

// Slots returns both slots, A first.
func (d *Disk) Slots() (a, b Slot) {
	a, _ = d.Slot(A)
	b, _ = d.Slot(B)
	return a, b
}

// PartitionOffset returns where a slot's partition starts and how long it
// is, in bytes.
func (d *Disk) PartitionOffset(name string) (start, size int64, err error) {
	p, ok := d.parts[name]
	if !ok {
		return 0, 0, fmt.Errorf("no slot %q (want A or B)", name)
	}
	return int64(p.Start) * 512, int64(p.End-p.Start+1) * 512, nil
}

// Set writes the slots' metadata into the GPT (both copies), keeping
// every other bit of the table as it was.
func (d *Disk) Set(slots ...Slot) error {
	for _, s := range slots {
		if !Valid(s.Name) {
			return fmt.Errorf("write slot table: no slot %q (want A or B)", s.Name)
		}
		if s.Priority < 0 || s.Priority > MaxPriority || s.Tries < 0 || s.Tries > MaxTries {
			return fmt.Errorf("write slot table: slot %s: priority %d and tries %d must be 0–15", s.Name, s.Priority, s.Tries)
		}
	}
	for _, s := range slots {
		p := d.parts[s.Name]
		p.Attributes = s.Attributes(p.Attributes)
	}
	if err := d.table.Write(d.f, d.size); err != nil {
		return fmt.Errorf("write slot table of %s: %w", d.path, err)
	}
	if err := d.f.Sync(); err != nil {
		return fmt.Errorf("write slot table of %s: %w", d.path, err)
	}
	return nil
}

// ErrNotBootable is returned when a slot asked to boot next is the one to
// avoid, or neither slot can boot.
var ErrNotBootable = errors.New("no bootable slot")

// NextState returns the slots after making name the one to boot next with
// tries attempts: it gets a priority above the other's and is not yet
// successful; the other keeps its state, so the loader falls back to it.
func NextState(a, b Slot, name string, tries int) (Slot, Slot, error) {
	if tries < 1 || tries > MaxTries {
		return a, b, fmt.Errorf("tries %d: want 1–%d", tries, MaxTries)
	}
	next, other := &a, &b
	if name == B {
		next, other = &b, &a
	} else if name != A {
		return a, b, fmt.Errorf("no slot %q (want A or B)", name)
	}
	// Priorities 1 and 2 are enough for two slots; keep the other bootable.
	other.Priority = 1
	next.Priority = 2
	next.Tries = tries
	next.Successful = false
	return a, b, nil
}

// GoodState returns the slots after the named one booted to its target: it
// is successful, with no tries needed, and has the highest priority.
func GoodState(a, b Slot, name string) (Slot, Slot, error) {
	good, other := &a, &b
	if name == B {
		good, other = &b, &a
	} else if name != A {
		return a, b, fmt.Errorf("no slot %q (want A or B)", name)
	}
	good.Successful = true
	good.Tries = 0
	if good.Priority <= other.Priority {
		good.Priority = other.Priority + 1
		if good.Priority > MaxPriority {
			good.Priority, other.Priority = 2, 1
		}
	}
	return a, b, nil
}
