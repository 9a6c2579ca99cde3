package slot

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// DefaultEnv is where the running OS finds GRUB's environment block: on
// the ESP, mounted (automounted) at /boot/efi.
const DefaultEnv = "/boot/efi/grub/grubenv"

// Booted returns the slot the running system booted from: orbit.slot= on
// the kernel command line, which GRUB sets.
func Booted() (string, error) {
	b, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return "", fmt.Errorf("booted slot: %w", err)
	}
	for _, a := range strings.Fields(string(b)) {
		if v, ok := strings.CutPrefix(a, "orbit.slot="); ok {
			if !Valid(v) {
				return "", fmt.Errorf("booted slot: orbit.slot=%q on the kernel command line is not A or B", v)
			}
			return v, nil
		}
	}
	return "", fmt.Errorf("booted slot: no orbit.slot= on the kernel command line (not booted by the OS's loader)")
}

// PartitionDevice returns the device of the partition with GPT name
// label (/dev/vda3), from sysfs, so no udev symlink is needed.
func PartitionDevice(label string) (string, error) {
	m, _ := filepath.Glob("/sys/class/block/*/uevent")
	for _, u := range m {
		f, err := os.Open(u)
		if err != nil {
			continue
		}
		var name, dev string
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "PARTNAME="); ok {
				name = v
			}
			if v, ok := strings.CutPrefix(sc.Text(), "DEVNAME="); ok {
				dev = v
			}
		}
		f.Close()
		if name == label && dev != "" {
			return "/dev/" + dev, nil
		}
	}
	return "", fmt.Errorf("no partition named %s", label)
}

// DefaultDisk returns the disk that holds USR-A: the machine's OS disk.
func DefaultDisk() (string, error) {
	p, err := PartitionDevice(Label(A))
	if err != nil {
		return "", fmt.Errorf("find the OS disk: %w", err)
	}
	return DiskOf(p)
}

// DiskOf returns the whole disk a partition device (/dev/vda3) is on, from
// sysfs: /sys/class/block/vda3 links to .../block/vda/vda3.
func DiskOf(part string) (string, error) {
	sys, err := filepath.EvalSymlinks(filepath.Join("/sys/class/block", filepath.Base(part)))
	if err != nil {
		return "", fmt.Errorf("find the disk of %s: %w", part, err)
	}
	if _, err := os.Stat(filepath.Join(sys, "partition")); err != nil {
		return "", fmt.Errorf("find the disk of %s: not a partition", part)
	}
	return "/dev/" + filepath.Base(filepath.Dir(sys)), nil
}
