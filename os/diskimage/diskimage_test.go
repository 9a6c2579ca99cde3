package diskimage

import (
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orbit-pods/orbit/os/slot"
)

func TestWriteDiskLayout(t *testing.T) {
	if _, err := exec.LookPath("sgdisk"); err != nil {
		t.Skip("SKIP: sgdisk is not installed (gdisk; scripts/install-deps)")
	}
	dir := t.TempDir()
	content := filepath.Join(dir, "usr.img")
	data := make([]byte, 3<<20)
	copy(data[1<<20:], "orbit-usr") // a zero MiB first, which copySparse skips
	if err := os.WriteFile(content, data, 0o644); err != nil {
		t.Fatal(err)
	}
	a := slot.Slot{Name: slot.A, Priority: 2, Successful: true}
	disk := filepath.Join(dir, "disk.raw")
	size, err := writeDisk(disk, []part{
		{1, "EFI-SYSTEM", "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", 2, "", 0},
		{2, "BIOS-BOOT", "21686148-6449-6E6F-744E-656564454649", 1, "", 0},
		{3, slot.Label(slot.A), TypeUsr, 4, content, a.Attributes(0)},
		{4, slot.Label(slot.B), TypeUsr, 4, "", 0},
		{6, "ROOT", TypeRoot, 2, "", 0},
	})
	if err != nil {
		t.Fatal(err)
	}
	if size != (1+2+1+4+4+2+1)<<20 {
		t.Errorf("size %d", size)
	}
	out, err := exec.Command("sgdisk", "-v", "-p", disk).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "No problems found") {
		t.Fatalf("sgdisk: %v\n%s", err, out)
	}
	for _, want := range []string{"EF00  EFI-SYSTEM", "EF02  BIOS-BOOT", "8314  USR-A", "8314  USR-B", "8304  ROOT"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	d, err := slot.Open(disk, false)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if got, _ := d.Slot(slot.A); got.Priority != 2 || !got.Successful {
		t.Errorf("slot A %v", got)
	}
	start, _, _ := d.PartitionOffset(slot.A)
	b, _ := os.ReadFile(disk)
	if string(b[start+1<<20:start+1<<20+9]) != "orbit-usr" {
		t.Error("USR-A's content is not at its partition")
	}

	// GRUB for BIOS: boot.img's pointer to core.img, core.img's to the rest.
	boot, core := filepath.Join(dir, "boot.img"), filepath.Join(dir, "core.img")
	os.WriteFile(boot, make([]byte, 512), 0o644)
	os.WriteFile(core, make([]byte, 1500), 0o644)
	lba := int64(3 << 20 / 512)
	if err := installBIOS(disk, boot, core, lba, 1<<20); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(disk)
	if got := binary.LittleEndian.Uint64(b[0x5c:]); got != uint64(lba) {
		t.Errorf("boot.img points at sector %d, want %d", got, lba)
	}
	if got := binary.LittleEndian.Uint64(b[lba*512+0x1f4:]); got != uint64(lba+1) {
		t.Errorf("core.img's block list starts at %d, want %d", got, lba+1)
	}
	if got := binary.LittleEndian.Uint16(b[lba*512+0x1fc:]); got != 2 {
		t.Errorf("core.img's block list is %d sectors, want 2", got)
	}
	if out, err := exec.Command("sgdisk", "-v", disk).CombinedOutput(); err != nil || !strings.Contains(string(out), "No problems found") {
		t.Errorf("GPT after the boot code: %v\n%s", err, out)
	}
}

func TestGrubConfigCountsBothSlots(t *testing.T) {
	c := grubConfig()
	for _, want := range []string{
		"load_env -f $prefix/grubenv",
		`if [ "$orbit_a_tries" = 15 ]; then set orbit_a_tries=14`,
		`elif [ "$orbit_b_tries" = 1 ]; then set orbit_b_tries=0`,
		"save_env -f $prefix/grubenv orbit_b_tries",
		"linux /$slot/vmlinuz " + kernelArgs + " orbit.slot=$slot $orbit_usr_args",
	} {
		if !strings.Contains(c, want) {
			t.Errorf("grub.cfg lacks %q", want)
		}
	}
	if got := SlotConfig("abc", 42); got != "set orbit_usr_args=\"orbit.usrhash=abc orbit.usrhashoffset=42\"\n" {
		t.Errorf("slot.cfg %q", got)
	}
}
