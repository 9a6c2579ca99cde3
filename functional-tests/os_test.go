//go:build functional

package functional

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orbit-pods/orbit/os/diskimage"
	"github.com/orbit-pods/orbit/os/vm"
)

// osImage builds the OS image once per test binary; the debootstrap
// tarball and the image are cached across runs under ORBIT_OS_CACHE.
var osImage = sync.OnceValues(func() (*diskimage.Image, error) {
	cache := osCache()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	start := time.Now()
	img, built, err := diskimage.Build(ctx, diskimage.Spec{CacheDir: cache, Build: build},
		func(f string, a ...any) { fmt.Fprintf(os.Stderr, "os: "+f+"\n", a...) })
	if err == nil {
		fmt.Fprintf(os.Stderr, "os: image ready in %s (built: %v)\n", time.Since(start).Round(time.Millisecond), built)
	}
	return img, err
})

// osCache is where OS images are cached: ORBIT_OS_CACHE, else
// /var/cache/orbit-os.
func osCache() string {
	if c := os.Getenv("ORBIT_OS_CACHE"); c != "" {
		return c
	}
	return "/var/cache/orbit-os"
}

func osTools(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"qemu-system-x86_64", "qemu-img", "debootstrap", "mkfs.ext4", "mkfs.vfat", "mcopy", "veritysetup", "grub-mkimage"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("SKIP: %s is not installed (scripts/install-deps)", tool)
		}
	}
	if _, err := os.Stat(diskimage.OVMFCode); err != nil {
		t.Skipf("SKIP: no UEFI firmware %s (ovmf; scripts/install-deps)", diskimage.OVMFCode)
	}
}

// TestOSImage boots the OS image under UEFI on a disk larger than the
// image and checks it: the slot it reports, /usr read-only through
// dm-verity, ROOT grown to the disk, the pod its unit starts at boot
// answering, the slot marked good. Then it makes B the next slot with two
// tries and corrupts B's /usr: the machine must use up B's tries and come
// back on A by itself.
func TestOSImage(t *testing.T) {
	osTools(t)
	img, err := osImage()
	if err != nil {
		t.Fatal(err)
	}
	// Readiness deadlines, not assertions: TCG boots are slow and vary.
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	o := diskimage.BootOptions()
	o.DiskSizeMB = 4096
	m := bootMachine(t, ctx, 6*time.Minute, img.VMImage(), o)
	t.Logf("boot: firmware, GRUB and kernel to agent ready: qemu start to ready %s; kernel start to ready %s (guest uptime)",
		m.ReadyAt.Sub(m.Started).Round(time.Millisecond), m.ReadyUptime)

	r := vmRun(t, m, "systemctl is-system-running --wait")
	if state := strings.TrimSpace(r.Stdout); state != "running" {
		t.Errorf("system is %q, want running; failed units:\n%s", state, vmRun(t, m, "systemctl --failed --no-legend").Stdout)
	}
	t.Logf("%s\n%s", strings.TrimSpace(vmRun(t, m, "systemd-analyze").Stdout), vmRun(t, m, "systemd-analyze blame --no-pager | head -8").Stdout)

	t.Run("ReportsSlot", func(t *testing.T) {
		out := mustVMRun(t, m, "orbit-slot status")
		t.Logf("orbit-slot status:\n%s", out)
		if !strings.Contains(out, "booted: A\n") {
			t.Errorf("booted slot is not A")
		}
		if !strings.Contains(out, "gpt:    A priority=2 tries=0 successful=true") {
			t.Errorf("slot A is not marked good in the GPT")
		}
	})

	t.Run("AgentsOnBoard", func(t *testing.T) {
		// The reboot manager runs; provisioning ran once and found no
		// config; the update agent stays off in an image without keys.
		out := mustVMRun(t, m, "systemctl is-active orbit-rebootmgr.service orbit-provision.service orbit-gc.timer || true")
		if out != "active\nactive\nactive\n" {
			t.Errorf("orbit-rebootmgr, orbit-provision, orbit-gc.timer: %q\n%s", out,
				vmRun(t, m, "journalctl -b -o cat -u orbit-rebootmgr -u orbit-provision --no-pager | tail -20").Stdout)
		}
		if out := vmRun(t, m, "journalctl -b -o cat -u orbit-provision --no-pager").Stdout; !strings.Contains(out, "nothing to apply") {
			t.Errorf("orbit-provision's journal: %s", out)
		}
		if got := strings.TrimSpace(mustVMRun(t, m, "systemctl show -p ConditionResult --value orbit-update.service")); got != "no" {
			t.Errorf("orbit-update.service ran in an image without keys (ConditionResult=%s)", got)
		}
		// A unit ordered into a cycle makes systemd drop boot jobs.
		if out := vmRun(t, m, "journalctl -b -o cat --no-pager | grep -i 'ordering cycle' | head -5").Stdout; out != "" {
			t.Errorf("ordering cycles at boot:\n%s", out)
		}
		if r := vmRun(t, m, "systemctl is-active local-fs.target usr-share-oem.mount"); r.Stdout != "active\nactive\n" {
			t.Errorf("local-fs.target, usr-share-oem.mount: %q", r.Stdout)
		}
		for _, bin := range []string{"orbit-update", "orbit-rebootmgr", "orbit-rebootctl", "orbit-provision"} {
			if r := vmRun(t, m, "test -x /usr/local/bin/"+bin); r.Code != 0 {
				t.Errorf("%s is not in /usr/local/bin", bin)
			}
		}
		if out := mustVMRun(t, m, ". /etc/os-release; echo $ID $VERSION_ID; findmnt -no OPTIONS /usr/share/oem"); !strings.HasPrefix(out, "orbit "+diskimage.DefaultVersion+"\nro,") {
			t.Errorf("os-release and the OEM mount: %q", out)
		}
	})

	t.Run("UsrReadOnlyVerity", func(t *testing.T) {
		if out := mustVMRun(t, m, "findmnt -no SOURCE,OPTIONS /usr"); !strings.HasPrefix(out, "/dev/mapper/usr ro,") {
			t.Errorf("/usr is mounted %q, want /dev/mapper/usr ro", out)
		}
		if out := mustVMRun(t, m, "veritysetup status usr"); !strings.Contains(out, "status:      verified") && !strings.Contains(out, "is active") {
			t.Errorf("veritysetup status usr:\n%s", out)
		}
		if r := vmRun(t, m, "touch /usr/orbit-test-write"); r.Code == 0 {
			t.Errorf("a write to /usr succeeded")
		} else if !strings.Contains(r.Stderr, "Read-only file system") {
			t.Errorf("write to /usr failed, but not as read-only: %s", r.Stderr)
		}
		mustVMRun(t, m, "touch /etc/orbit-test-write /var/orbit-test-write")
	})

	t.Run("RootGrew", func(t *testing.T) {
		mustVMRun(t, m, "systemctl is-active orbit-grow-root.service")
		out := mustVMRun(t, m, "df -B1M --output=size / | tail -1")
		size, err := strconv.Atoi(strings.TrimSpace(out))
		if err != nil {
			t.Fatalf("df: %q", out)
		}
		// The image's ROOT is 512 MiB; the disk is 4 GiB, 2.2 GiB of it
		// before ROOT (ESP, BIOS boot, two 1 GiB slots, OEM), so a grown
		// ROOT is about 1.85 GiB.
		if size < 1700 {
			t.Errorf("/ is %d MiB, want it grown to the 4 GiB disk\n%s", size, vmRun(t, m, "journalctl -u orbit-grow-root --no-pager -o cat").Stdout)
		}
		t.Logf("/ is %d MiB", size)
	})

	t.Run("PodFromUnitAnswers", func(t *testing.T) {
		// Waits for the pod to listen (a readiness loop, not a timing check).
		r := vmRun(t, m, `for i in $(seq 120); do exec 3<>/dev/tcp/127.0.0.1/8080 && break; sleep 1; done
printf 'GET /index.html HTTP/1.0\r\n\r\n' >&3; cat <&3`)
		if !strings.Contains(r.Stdout, "hello from an orbit pod") {
			t.Errorf("the demo pod did not answer: %s %s\n%s", r.Stdout, r.Stderr,
				vmRun(t, m, "systemctl status --no-pager orbit-demo-httpd; journalctl -u orbit-demo-httpd --no-pager -o cat | tail -20").Stdout)
		}
		if out := vmRun(t, m, "orbit list 2>&1 || true").Stdout; out != "" {
			t.Logf("orbit list:\n%s", out)
		}
	})
	if t.Failed() {
		return
	}

	t.Run("FallsBackFromBrokenSlot", func(t *testing.T) {
		mustVMRun(t, m, "orbit-slot next B -tries 2")
		// The first MiB of B's /usr (its ext4 superblock) no longer matches
		// the hash tree: dm-verity fails the read and the mount with it.
		mustVMRun(t, m, `dd if=/dev/urandom of=$(readlink -f /dev/disk/by-partlabel/USR-B) bs=1M count=1 conv=fsync status=none && sync`)
		before := len(m.Console())
		if err := m.Send("systemctl reboot"); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := m.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
		t.Logf("two failed tries on B and a boot of A: %s", time.Since(start).Round(time.Second))
		console := m.Console()[before:]
		if n := strings.Count(console, "orbit-os: booting slot B"); n < 2 {
			t.Errorf("GRUB booted B %d times, want its 2 tries", n)
		}
		if n := regexp.MustCompile(`slot B: cannot mount /usr`).FindAllStringIndex(console, -1); len(n) < 2 {
			t.Errorf("the initramfs failed B's /usr %d times, want 2", len(n))
		}
		mustVMRun(t, m, "systemctl is-system-running --wait; systemctl start orbit-slot-good.service")
		out := mustVMRun(t, m, "orbit-slot status")
		t.Logf("orbit-slot status:\n%s", out)
		if !strings.Contains(out, "booted: A\n") {
			t.Errorf("not back on A")
		}
		for _, want := range []string{"gpt:    B priority=2 tries=0 successful=false", "loader: B priority=2 tries=0 successful=false", "next:   A"} {
			if !strings.Contains(out, want) {
				t.Errorf("status lacks %q", want)
			}
		}
	})

	pctx, pcancel := context.WithTimeout(ctx, 3*time.Minute)
	defer pcancel()
	if err := m.Poweroff(pctx); err != nil {
		t.Errorf("poweroff: %v", err)
	}
}

// TestOSImageBootsWithBIOS boots the same image through SeaBIOS: GRUB's
// BIOS core image in BIOS-BOOT picks slot A from the same environment
// block, and the initramfs mounts its verity /usr.
func TestOSImageBootsWithBIOS(t *testing.T) {
	osTools(t)
	img, err := osImage()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	m := bootMachine(t, ctx, 6*time.Minute, img.VMImage(), vm.BootOptions{Reboot: true})
	t.Logf("boot: qemu start to agent ready %s", m.ReadyAt.Sub(m.Started).Round(time.Millisecond))
	if r := vmRun(t, m, "test -d /sys/firmware/efi"); r.Code == 0 {
		t.Error("booted with UEFI, want BIOS")
	}
	if out := mustVMRun(t, m, "orbit-slot status; findmnt -no SOURCE /usr"); !strings.Contains(out, "booted: A\n") || !strings.Contains(out, "/dev/mapper/usr") {
		t.Errorf("status:\n%s", out)
	}
	if err := m.Poweroff(ctx); err != nil {
		t.Errorf("poweroff: %v", err)
	}
}
