package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/diskfs/go-diskfs/partition/gpt"

	"github.com/orbit-pods/orbit/os/slot"
	"github.com/orbit-pods/orbit/os/update/payload"
)

// inputsFromDisk takes a payload's files out of a disk image made by
// `make os-image`: slot A's whole partition (/usr and its dm-verity hash
// tree), and A's vmlinuz, initramfs.img and slot.cfg from the ESP (read
// with mtools, no mount). The files go to dir.
func inputsFromDisk(disk, dir string) ([]payload.Input, error) {
	d, err := slot.Open(disk, false)
	if err != nil {
		return nil, err
	}
	start, size, err := d.PartitionOffset(slot.A)
	d.Close()
	if err != nil {
		return nil, err
	}
	f, err := os.Open(disk)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	usr := filepath.Join(dir, "usr.img")
	out, err := os.Create(usr)
	if err != nil {
		return nil, err
	}
	if _, err := io.Copy(out, io.NewSectionReader(f, start, size)); err != nil {
		out.Close()
		return nil, fmt.Errorf("copy USR-A out of %s: %w", disk, err)
	}
	if err := out.Close(); err != nil {
		return nil, err
	}
	t, err := gpt.Read(f, 512, 512)
	if err != nil {
		return nil, fmt.Errorf("read GPT of %s: %w", disk, err)
	}
	var espStart int64 = -1
	for _, p := range t.Partitions {
		if p.Type == gpt.EFISystemPartition {
			espStart = int64(p.Start) * 512
		}
	}
	if espStart < 0 {
		return nil, fmt.Errorf("%s has no EFI system partition", disk)
	}
	in := []payload.Input{{Role: payload.RoleUsr, Path: usr}}
	for _, x := range []struct{ role, name string }{{payload.RoleKernel, "vmlinuz"}, {payload.RoleInitrd, "initramfs.img"}, {payload.RoleSlotCfg, "slot.cfg"}} {
		dst := filepath.Join(dir, x.name)
		cmd := exec.Command("mcopy", "-n", "-i", fmt.Sprintf("%s@@%d", disk, espStart), "::/A/"+x.name, dst)
		if b, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("mcopy A/%s from the ESP of %s: %v: %s", x.name, disk, err, b)
		}
		in = append(in, payload.Input{Role: x.role, Path: dst})
	}
	return in, nil
}
