// Package diskimage builds the Orbit OS disk image: a raw x86-64 GPT disk
// in the Container Linux shape, made from Debian packages (debootstrap,
// cached by os/vm) and the freshly built orbit, with no loop device and no
// mount:
//
//	1 EFI-SYSTEM  ESP (FAT, mtools): GRUB, its environment block, each
//	              slot's kernel, initramfs and command line
//	2 BIOS-BOOT   reserved for GRUB's BIOS core image
//	3 USR-A       /usr, ext4 read-only, dm-verity hash tree after it
//	4 USR-B       the other slot (the same /usr in a fresh image)
//	5 OEM         ext4, empty: for the platform's additions
//	6 ROOT        ext4 read-write: /etc's upper layer, /var, /root, /home;
//	              grown to the disk on boot
//
// The slots' metadata is os/slot's: GPT attribute bits and GRUB's copy.
package diskimage

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/diskfs/go-diskfs/partition/gpt"

	"github.com/orbit-pods/orbit/os/slot"
	"github.com/orbit-pods/orbit/os/vm"
)

// Packages are installed by debootstrap on top of minbase: systemd, the
// tools the OS's own units run (growpart, resize2fs), etcd, sshd (off by
// default), iptables for CNI, veritysetup for the update agent's checks.
func Packages() []string {
	return []string{"systemd", "systemd-sysv", "dbus", "iproute2", "libseccomp2", "kmod", "udev",
		"e2fsprogs", "fdisk", "cloud-guest-utils", "etcd-server", "openssh-server", "iptables", "ca-certificates", "cryptsetup-bin"}
}

// Partition types: the Discoverable Partitions Specification's for /usr
// and root on x86-64, UEFI's for the ESP and GRUB's BIOS boot partition.
const (
	TypeUsr  gpt.Type = "8484680C-9521-48C6-9C11-B0720656F69E"
	TypeRoot gpt.Type = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"
	TypeOEM  gpt.Type = "0FC63DAF-8483-4772-8E79-3D69D8477DE4" // Linux filesystem data
)

// Sizes in MiB. A slot is fixed in size, so that any update fits either.
const (
	espMB   = 128
	biosMB  = 2
	usrMB   = 1024
	oemMB   = 32
	rootMB  = 512
	mib     = 1 << 20
	firstMB = 1 // the GPT and alignment
)

// usrDataBytes is the ext4 part of a slot; the dm-verity hash tree (under
// 1% of it) follows, at HashOffset.
const usrDataBytes = (usrMB - 16) * mib

// Spec says what goes into an image.
type Spec struct {
	CacheDir string            // the debootstrap tarball and the images; /var/cache/orbit-os
	Build    string            // orbit's build directory (bin/, libexec/, cni/, tools/)
	Files    map[string]string // more files: guest path to host path
	Kernel   string            // /boot/vmlinuz-RELEASE; the newest when empty
	// Version is the OS version, VERSION_ID in /usr/lib/os-release: what
	// the update agent reports and compares offers with. DefaultVersion
	// when empty.
	Version string
}

// DefaultVersion is the version of an image whose Spec names none.
const DefaultVersion = "0.1.0"

// osRelease is the image's /usr/lib/os-release (/etc/os-release links to
// it): Orbit OS on Debian, at version.
func osRelease(version string) guestFile {
	return guestFile{"/usr/lib/os-release", 0o644, "NAME=\"Orbit OS\"\nID=orbit\nID_LIKE=debian\n" +
		"PRETTY_NAME=\"Orbit OS " + version + "\"\nVERSION_ID=" + version + "\n" +
		"HOME_URL=\"https://github.com/orbit-pods/orbit\"\n"}
}

// Image is a built image.
type Image struct {
	Disk       string // the raw disk image
	UsrHash    string // dm-verity root hash of /usr (both slots)
	HashOffset int64  // where the hash tree starts in a slot, bytes
	SizeBytes  int64
}

// recipe changes whenever what Build makes changes in a way its inputs
// do not show.
const recipe = "3"

// Build returns the image for spec, building it when the cache has none
// for these inputs. built says whether it did.
func Build(ctx context.Context, spec Spec, log func(string, ...any)) (img *Image, built bool, err error) {
	if log == nil {
		log = func(string, ...any) {}
	}
	if spec.CacheDir == "" {
		return nil, false, fmt.Errorf("os image: no cache directory")
	}
	kernel := spec.Kernel
	if kernel == "" {
		if kernel, err = vm.NewestKernel(); err != nil {
			return nil, false, err
		}
	}
	release := strings.TrimPrefix(filepath.Base(kernel), "vmlinuz-")
	modDir := filepath.Join("/lib/modules", release)
	for _, tool := range []string{"debootstrap", "mkfs.ext4", "mkfs.vfat", "mcopy", "mmd", "veritysetup", "grub-mkimage", "depmod", "ldd"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, false, fmt.Errorf("os image: %s is not installed (scripts/install-deps)", tool)
		}
	}
	tarball, _, err := vm.Rootfs(ctx, vm.RootfsSpec{CacheDir: spec.CacheDir, Packages: Packages()}, log)
	if err != nil {
		return nil, false, fmt.Errorf("os image: %w", err)
	}
	files, err := buildFiles(spec)
	if err != nil {
		return nil, false, err
	}

	h := sha256.New()
	put := func(s string) { fmt.Fprintf(h, "%d:%s;", len(s), s) }
	for _, s := range []string{recipe, filepath.Base(tarball), release, initScript, grubConfig(), strings.Join(initModules, ","), strings.Join(moduleDirs(), ",")} {
		put(s)
	}
	version := spec.Version
	if version == "" {
		version = DefaultVersion
	}
	if strings.ContainsAny(version, " \n\"'$`\\") {
		return nil, false, fmt.Errorf("os image: version %q: want a plain VERSION_ID like 1.2.3", version)
	}
	gfs := append(slices.Clone(guestFiles), osRelease(version))
	for _, gf := range gfs {
		put(gf.path + gf.mode.String() + gf.content)
	}
	dsts := make([]string, 0, len(files))
	for d := range files {
		dsts = append(dsts, d)
	}
	sort.Strings(dsts)
	for _, d := range append(dsts, "kernel") {
		src := kernel
		if d != "kernel" {
			src = files[d]
		}
		put(d)
		if err := hashFile(h, src); err != nil {
			return nil, false, fmt.Errorf("os image: %w", err)
		}
	}
	// The host programs whose output goes into the image.
	for _, f := range []string{"/bin/busybox", "/usr/sbin/veritysetup", grubBIOSDir + "/kernel.img", grubBIOSDir + "/boot.img", "/usr/lib/grub/x86_64-efi/kernel.img"} {
		if err := hashFile(h, f); err != nil {
			return nil, false, fmt.Errorf("os image: %w (scripts/install-deps)", err)
		}
	}
	key := hex.EncodeToString(h.Sum(nil))[:16]
	path := filepath.Join(spec.CacheDir, "os-"+key+".raw")
	meta := path + ".verity"
	if b, err := os.ReadFile(meta); err == nil {
		if img, err := parseMeta(path, b); err == nil {
			now := time.Now()
			_ = os.Chtimes(path, now, now)
			_ = os.Chtimes(meta, now, now)
			return img, false, nil
		}
	}

	start := time.Now()
	dir, err := os.MkdirTemp(spec.CacheDir, "os-build-")
	if err != nil {
		return nil, false, fmt.Errorf("os image: %w", err)
	}
	defer os.RemoveAll(dir)
	img, err = assemble(ctx, dir, tarball, kernel, modDir, gfs, files, key)
	if err != nil {
		return nil, false, fmt.Errorf("os image: %w", err)
	}
	if err := os.Rename(img.Disk, path); err != nil {
		return nil, false, fmt.Errorf("os image: %w", err)
	}
	img.Disk = path
	if err := os.WriteFile(meta, []byte(fmt.Sprintf("usrhash=%s\nhashoffset=%d\n", img.UsrHash, img.HashOffset)), 0o644); err != nil {
		return nil, false, fmt.Errorf("os image: %w", err)
	}
	log("os image %s built in %s", path, time.Since(start).Round(100*time.Millisecond))
	prune(spec.CacheDir, path)
	return img, true, nil
}

func parseMeta(path string, b []byte) (*Image, error) {
	img := &Image{Disk: path}
	if _, err := fmt.Sscanf(string(b), "usrhash=%s\nhashoffset=%d\n", &img.UsrHash, &img.HashOffset); err != nil {
		return nil, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	img.SizeBytes = fi.Size()
	return img, nil
}

// prune removes images no build asked for in an hour (another worktree
// sharing the cache may be about to boot its own).
func prune(cache, keep string) {
	m, _ := filepath.Glob(filepath.Join(cache, "os-*.raw"))
	for _, f := range m {
		if fi, err := os.Stat(f); err == nil && f != keep && time.Since(fi.ModTime()) > time.Hour {
			_ = os.Remove(f)
			_ = os.Remove(f + ".verity")
		}
	}
}

func hashFile(h io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	fmt.Fprintf(h, "%s;", fi.Mode())
	_, err = io.Copy(h, f)
	return err
}

// moduleDirs are the parts of the kernel's modules the OS carries: a pod
// host's (os/vm's), device-mapper for verity, and firmware interfaces
// (qemu_fw_cfg, where QEMU passes a provisioning config).
func moduleDirs() []string {
	return append(slices.Clone(vm.ModuleDirs), "kernel/drivers/md", "kernel/drivers/firmware")
}

// agents are the programs of the build the OS carries in /usr/local/bin:
// orbit, the slot tool, and the update, reboot and provisioning agents.
var agents = []string{"orbit", "orbit-slot", "orbit-update", "orbit-rebootmgr", "orbit-rebootctl", "orbit-provision"}

// buildFiles maps guest paths to host files: orbit as `make install`
// puts it under /usr/local, the OS's tools, then spec.Files.
func buildFiles(spec Spec) (map[string]string, error) {
	out := map[string]string{}
	b := spec.Build
	need := []string{"libexec/orbit-stage1", "libexec/orbit-pod-init"}
	for _, f := range agents {
		need = append(need, "bin/"+f)
	}
	for _, f := range need {
		if _, err := os.Stat(filepath.Join(b, f)); err != nil {
			return nil, fmt.Errorf("os image: orbit build %s has no %s (run make first)", b, f)
		}
	}
	for _, f := range agents {
		out["/usr/local/bin/"+f] = filepath.Join(b, "bin", f)
	}
	for _, g := range []struct{ glob, dst string }{
		{"libexec/*", "/usr/local/libexec/orbit/"},
		{"cni/*", "/usr/local/libexec/orbit/cni/"},
		{"tools/orbit-flanneld", "/usr/local/bin/"},
	} {
		m, _ := filepath.Glob(filepath.Join(b, g.glob))
		for _, f := range m {
			out[g.dst+filepath.Base(f)] = f
		}
	}
	if demo := filepath.Join(b, "demo.oci.tar"); exists(demo) {
		out["/usr/share/orbit-os/demo.oci.tar"] = demo
	}
	for d, s := range spec.Files {
		out[d] = s
	}
	return out, nil
}

// assemble makes the image in dir and returns it (Disk in dir).
func assemble(ctx context.Context, dir, tarball, kernel, modDir string, gfs []guestFile, files map[string]string, key string) (*Image, error) {
	root := filepath.Join(dir, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		return nil, err
	}
	if err := run(ctx, "tar", "--numeric-owner", "--xattrs", "-C", root, "-xf", tarball); err != nil {
		return nil, err
	}
	for _, gf := range gfs {
		if err := writeGuestFile(root, gf); err != nil {
			return nil, err
		}
	}
	for d, s := range files {
		if err := vm.CopyFile(s, filepath.Join(root, d)); err != nil {
			return nil, err
		}
	}
	release := filepath.Base(modDir)
	if err := vm.CopyModules(ctx, modDir, filepath.Join(root, "usr/lib/modules", release), moduleDirs()); err != nil {
		return nil, err
	}
	if err := setRootPassword(filepath.Join(root, "etc/shadow")); err != nil {
		return nil, err
	}
	// sshd off by default, no host keys shared by every machine; each
	// machine its own machine-id, made at its first boot (D-Bus's copy
	// goes too: systemd would initialise every machine's ID from it).
	// apt's timers have nothing to do on a read-only /usr.
	for _, g := range []string{"etc/systemd/system/multi-user.target.wants/ssh.service", "etc/systemd/system/sshd.service",
		"etc/ssh/ssh_host_*", "etc/machine-id", "var/lib/dbus/machine-id", "etc/systemd/system/timers.target.wants/apt-daily*.timer",
		"etc/systemd/system/timers.target.wants/dpkg-db-backup.timer"} {
		m, _ := filepath.Glob(filepath.Join(root, g))
		for _, f := range m {
			if err := os.Remove(f); err != nil {
				return nil, err
			}
		}
	}

	// /etc becomes the overlay's lower layer in /usr; ROOT has the upper.
	if err := os.MkdirAll(filepath.Join(root, "usr/share/orbit-os"), 0o755); err != nil {
		return nil, err
	}
	if err := os.Rename(filepath.Join(root, "etc"), filepath.Join(root, "usr/share/orbit-os/etc")); err != nil {
		return nil, err
	}
	usrTree := filepath.Join(dir, "usr")
	if err := os.Rename(filepath.Join(root, "usr"), usrTree); err != nil {
		return nil, err
	}
	// OEM is mounted on /usr/share/oem, where Container Linux had it and
	// orbit-provision looks for config.ign.
	if err := os.MkdirAll(filepath.Join(usrTree, "share/oem"), 0o755); err != nil {
		return nil, err
	}
	for _, d := range []string{"etc", "usr", "boot/efi"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return nil, err
		}
	}

	// /usr: ext4 without a journal (never written), then the hash tree.
	usrImg := filepath.Join(dir, "usr.img")
	if err := mkfsExt4(ctx, usrImg, usrDataBytes, usrTree, "USR", "-O", "^has_journal", "-m", "0"); err != nil {
		return nil, err
	}
	salt := sha256.Sum256([]byte("orbit-os usr " + key))
	out, err := exec.CommandContext(ctx, "veritysetup", "format", "--data-blocks", fmt.Sprint(usrDataBytes/4096),
		"--hash-offset", fmt.Sprint(usrDataBytes), "--salt", hex.EncodeToString(salt[:]), usrImg, usrImg).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("veritysetup format: %w: %s", err, out)
	}
	m := regexp.MustCompile(`Root hash:\s+([0-9a-f]+)`).FindSubmatch(out)
	if m == nil {
		return nil, fmt.Errorf("veritysetup format printed no root hash:\n%s", out)
	}
	img := &Image{UsrHash: string(m[1]), HashOffset: usrDataBytes}
	if fi, err := os.Stat(usrImg); err != nil || fi.Size() > usrMB*mib {
		return nil, fmt.Errorf("/usr and its hash tree do not fit a %d MiB slot", usrMB)
	}

	rootImg := filepath.Join(dir, "root.img")
	if err := mkfsExt4(ctx, rootImg, rootMB*mib, root, "ROOT"); err != nil {
		return nil, err
	}
	oemDir := filepath.Join(dir, "oem")
	if err := os.Mkdir(oemDir, 0o755); err != nil {
		return nil, err
	}
	oemImg := filepath.Join(dir, "oem.img")
	if err := mkfsExt4(ctx, oemImg, oemMB*mib, oemDir, "OEM"); err != nil {
		return nil, err
	}

	initramfs := filepath.Join(dir, "initramfs.img")
	if err := vm.WriteInitramfs(initramfs, modDir, vm.InitramfsSpec{
		Modules: initModules, Init: initScript, Busybox: "/bin/busybox", Programs: []string{"/usr/sbin/veritysetup"},
	}); err != nil {
		return nil, err
	}
	// A fresh disk boots A, which is good; B holds the same /usr but is
	// not bootable until an update makes it so.
	a := slot.Slot{Name: slot.A, Priority: 2, Successful: true}
	b := slot.Slot{Name: slot.B, Priority: 1}
	espImg := filepath.Join(dir, "esp.img")
	if err := makeESP(ctx, dir, espImg, kernel, initramfs, img, a, b); err != nil {
		return nil, err
	}

	core := filepath.Join(dir, "core.img")
	if err := run(ctx, "grub-mkimage", append([]string{"-O", "i386-pc", "-p", "(hd0,gpt1)/grub", "-o", core, "biosdisk"}, grubModules...)...); err != nil {
		return nil, err
	}
	disk := filepath.Join(dir, "disk.raw")
	size, err := writeDisk(disk, []part{
		{1, "EFI-SYSTEM", gpt.EFISystemPartition, espMB, espImg, 0},
		{2, "BIOS-BOOT", gpt.BIOSBoot, biosMB, "", 0},
		{3, slot.Label(slot.A), TypeUsr, usrMB, usrImg, a.Attributes(0)},
		{4, slot.Label(slot.B), TypeUsr, usrMB, usrImg, b.Attributes(0)},
		{5, "OEM", TypeOEM, oemMB, oemImg, 0},
		{6, "ROOT", TypeRoot, rootMB, rootImg, 0},
	})
	if err != nil {
		return nil, err
	}
	if err := installBIOS(disk, grubBIOSDir+"/boot.img", core, (firstMB+espMB)*mib/512, biosMB*mib); err != nil {
		return nil, fmt.Errorf("GRUB for BIOS: %w", err)
	}
	img.Disk, img.SizeBytes = disk, size
	return img, nil
}

// grubBIOSDir has Debian's GRUB for BIOS (grub-pc-bin).
const grubBIOSDir = "/usr/lib/grub/i386-pc"

// installBIOS does what grub-bios-setup does for a disk with a BIOS boot
// partition, on an image file (grub-bios-setup wants the host's devices):
// boot.img's code into the MBR (the partition table after it is kept),
// told where core.img starts; core.img into the BIOS boot partition at
// sector lba, its first sector's block list told where the rest is.
func installBIOS(disk, bootImg, coreImg string, lba int64, room int64) error {
	boot, err := os.ReadFile(bootImg)
	if err != nil {
		return err
	}
	core, err := os.ReadFile(coreImg)
	if err != nil {
		return err
	}
	if len(boot) != 512 || len(core) < 512 || int64(len(core)) > room {
		return fmt.Errorf("boot.img is %d bytes and core.img %d (room for %d)", len(boot), len(core), room)
	}
	// Offsets from GRUB's boot.S and diskboot.S: the sector of core.img
	// (GRUB_BOOT_MACHINE_KERNEL_SECTOR), and the first block list entry at
	// the end of core.img's first sector (start, then length in sectors).
	const kernelSector, listStart, listLen = 0x5c, 0x200 - 12, 0x200 - 4
	binary.LittleEndian.PutUint64(boot[kernelSector:], uint64(lba))
	binary.LittleEndian.PutUint64(core[listStart:], uint64(lba+1))
	binary.LittleEndian.PutUint16(core[listLen:], uint16((len(core)+511)/512-1))
	f, err := os.OpenFile(disk, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.WriteAt(boot[:440], 0); err != nil {
		return err
	}
	if _, err := f.WriteAt(core, lba*512); err != nil {
		return err
	}
	return f.Close()
}

func setRootPassword(shadow string) error {
	b, err := os.ReadFile(shadow)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(b))
	found := false
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) > 1 && f[0] == "root" {
			f[1] = devPasswordHash
			found = true
		}
		out.WriteString(strings.Join(f, ":") + "\n")
	}
	if !found {
		return fmt.Errorf("%s has no root entry", shadow)
	}
	return os.WriteFile(shadow, out.Bytes(), 0o640)
}

func mkfsExt4(ctx context.Context, path string, size int64, from, label string, opts ...string) error {
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		return err
	}
	if err := os.Truncate(path, size); err != nil {
		return err
	}
	args := append([]string{"-q", "-F", "-b", "4096", "-L", label, "-d", from}, opts...)
	return run(ctx, "mkfs.ext4", append(args, path)...)
}

// makeESP makes the FAT ESP with mtools: GRUB's EFI image (Debian's
// modules, the config below built in as its prefix's grub.cfg), its
// environment block, and each slot's kernel, initramfs and slot.cfg.
func makeESP(ctx context.Context, dir, esp, kernel, initramfs string, img *Image, a, b slot.Slot) error {
	if err := run(ctx, "mkfs.vfat", "-C", "-n", "EFI-SYSTEM", esp, fmt.Sprint(espMB*1024)); err != nil {
		return err
	}
	grubEFI := filepath.Join(dir, "BOOTX64.EFI")
	if err := run(ctx, "grub-mkimage", append([]string{"-O", "x86_64-efi", "-p", "/grub", "-o", grubEFI}, grubModules...)...); err != nil {
		return err
	}
	env := slot.Env{}
	env.SetSlot(a)
	env.SetSlot(b)
	envBytes, err := env.Format()
	if err != nil {
		return err
	}
	content := map[string][]byte{
		"grub.cfg": []byte(grubConfig()),
		"grubenv":  envBytes,
		"slot.cfg": []byte(SlotConfig(img.UsrHash, img.HashOffset)),
	}
	for n, c := range content {
		if err := os.WriteFile(filepath.Join(dir, n), c, 0o644); err != nil {
			return err
		}
	}
	mt := func(tool string, args ...string) error {
		return run(ctx, tool, append([]string{"-i", esp}, args...)...)
	}
	if err := mt("mmd", "::/EFI", "::/EFI/BOOT", "::/grub", "::/A", "::/B"); err != nil {
		return err
	}
	copies := [][2]string{{grubEFI, "::/EFI/BOOT/BOOTX64.EFI"}, {filepath.Join(dir, "grub.cfg"), "::/grub/grub.cfg"},
		{filepath.Join(dir, "grubenv"), "::/grub/grubenv"}}
	for _, s := range []string{slot.A, slot.B} {
		copies = append(copies, [2]string{kernel, "::/" + s + "/vmlinuz"}, [2]string{initramfs, "::/" + s + "/initramfs.img"},
			[2]string{filepath.Join(dir, "slot.cfg"), "::/" + s + "/slot.cfg"})
	}
	for _, c := range copies {
		if err := mt("mcopy", c[0], c[1]); err != nil {
			return err
		}
	}
	return nil
}

type part struct {
	index int
	name  string
	typ   gpt.Type
	mb    int64
	src   string // image to copy in; empty leaves zeros
	attr  uint64
}

// writeDisk lays the partitions out one after another from 1 MiB, writes
// the GPT (go-diskfs) and copies each partition's image in, keeping holes.
func writeDisk(path string, parts []part) (int64, error) {
	var total int64 = firstMB
	for _, p := range parts {
		total += p.mb
	}
	total += 1 // the backup GPT
	size := total * mib
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return 0, err
	}
	t := &gpt.Table{LogicalSectorSize: 512, PhysicalSectorSize: 512, ProtectiveMBR: true}
	off := int64(firstMB * mib)
	for _, p := range parts {
		t.Partitions = append(t.Partitions, &gpt.Partition{
			Index: p.index, Start: uint64(off / 512), End: uint64((off+p.mb*mib)/512 - 1),
			Type: p.typ, Name: p.name, Attributes: p.attr,
		})
		if p.src != "" {
			if err := copySparse(f, off, p.src); err != nil {
				return 0, fmt.Errorf("partition %s: %w", p.name, err)
			}
		}
		off += p.mb * mib
	}
	if err := t.Write(f, size); err != nil {
		return 0, fmt.Errorf("write GPT: %w", err)
	}
	return size, f.Close()
}

// copySparse copies src into f at off, skipping blocks of zeros.
func copySparse(f *os.File, off int64, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	buf := make([]byte, 1<<20)
	zero := make([]byte, len(buf))
	for pos := int64(0); ; {
		n, err := io.ReadFull(in, buf)
		if n > 0 && !bytes.Equal(buf[:n], zero[:n]) {
			if _, werr := f.WriteAt(buf[:n], off+pos); werr != nil {
				return werr
			}
		}
		pos += int64(n)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func run(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, tailLines(out, 20))
	}
	return nil
}

func tailLines(out []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// UEFI firmware for QEMU, from Debian's ovmf.
const (
	OVMFCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	OVMFVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
)

// VMImage is the image as os/vm boots it: through the firmware, with no
// kernel of its own (GRUB on the ESP picks the slot's).
func (img *Image) VMImage() *vm.Image { return &vm.Image{Disk: img.Disk} }

// BootOptions are os/vm's options for booting the image under OVMF, the
// guest free to reboot (a failed try reboots into the loader).
func BootOptions() vm.BootOptions {
	return vm.BootOptions{Firmware: OVMFCode, FirmwareVars: OVMFVars, Reboot: true}
}
