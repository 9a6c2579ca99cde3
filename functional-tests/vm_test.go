//go:build functional

package functional

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orbit-pods/orbit/os/vm"
)

// vmImage builds the VM image once per test binary; the rootfs and the image
// are cached across runs under ORBIT_VM_CACHE.
var vmImage = sync.OnceValues(func() (*vm.Image, error) {
	cache := os.Getenv("ORBIT_VM_CACHE")
	if cache == "" {
		cache = "/var/cache/orbit-vm"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	start := time.Now()
	tmp, err := os.MkdirTemp("", "orbit-vm-sdapp-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	sdapp, err := buildSdappImage(tmp)
	if err != nil {
		return nil, err
	}
	img, built, err := vm.BuildImage(ctx, vm.ImageSpec{
		Rootfs: vm.RootfsSpec{CacheDir: cache},
		Build:  build,
		Files: map[string]string{
			"/opt/orbit-test/demo.oci.tar":  filepath.Join(build, "demo.oci.tar"),
			"/opt/orbit-test/sdapp.oci.tar": sdapp,
		},
	}, func(f string, a ...any) { fmt.Fprintf(os.Stderr, "vm: "+f+"\n", a...) })
	if err == nil {
		fmt.Fprintf(os.Stderr, "vm: image ready in %s (built: %v)\n", time.Since(start).Round(time.Millisecond), built)
	}
	return img, err
})

// bootVM boots a fresh machine on the cached image; it is killed and its
// overlay removed when the test ends, pass or fail.
func bootVM(t *testing.T) *vm.Machine {
	t.Helper()
	bootVMTools(t)
	img, err := vmImage()
	if err != nil {
		t.Fatal(err)
	}
	m := bootMachine(t, context.Background(), 5*time.Minute, img, vm.BootOptions{})
	t.Logf("boot: kernel start to agent ready %s (guest uptime); qemu start to ready %s",
		m.ReadyUptime, m.ReadyAt.Sub(m.Started).Round(time.Millisecond))
	return m
}

// bootMachine boots img, waiting at most timeout (a readiness deadline,
// not an assertion: TCG boots are slow and vary) for its agent. The
// machine is killed and its overlay removed when the test ends, and its
// console is logged if the test failed, a failed boot included.
func bootMachine(t *testing.T, ctx context.Context, timeout time.Duration, img *vm.Image, o vm.BootOptions) *vm.Machine {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	m, err := vm.Boot(ctx, img, o)
	if m != nil {
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("console:\n%s", m.Console())
			}
			m.Close()
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// bootVMTools skips the test when the harness's tools are missing.
func bootVMTools(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"qemu-system-x86_64", "qemu-img", "debootstrap", "mkfs.ext4", "depmod"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("SKIP: %s is not installed (scripts/install-deps)", tool)
		}
	}
}

// vmRun runs a command in the guest and fails the test if the harness
// cannot tell its result.
func vmRun(t *testing.T, m *vm.Machine, cmd string) vm.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	r, err := m.Run(ctx, cmd)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func mustVMRun(t *testing.T, m *vm.Machine, cmd string) string {
	t.Helper()
	r := vmRun(t, m, cmd)
	if r.Code != 0 {
		t.Fatalf("%s: exit %d\nstdout: %s\nstderr: %s", cmd, r.Code, r.Stdout, r.Stderr)
	}
	return r.Stdout
}

// TestOrbitRunsUnderSystemdInVM boots the image with systemd as PID 1 and
// runs the freshly built orbit in it: directly, and as a transient unit
// whose result is the app's exit status and whose journal has its output.
func TestOrbitRunsUnderSystemdInVM(t *testing.T) {
	m := bootVM(t)

	if got := strings.TrimSpace(mustVMRun(t, m, "ps -o comm= -p 1 || cat /proc/1/comm")); got != "systemd" {
		t.Fatalf("PID 1 is %q, want systemd", got)
	}
	r := vmRun(t, m, "systemctl is-system-running --wait")
	state := strings.TrimSpace(r.Stdout)
	if state != "running" && state != "degraded" {
		t.Fatalf("systemctl is-system-running: %q (exit %d) %s", state, r.Code, r.Stderr)
	}
	if state == "degraded" {
		t.Logf("system degraded: %s", vmRun(t, m, "systemctl --failed --no-legend").Stdout)
	}
	t.Logf("boot to %s: %s\n%s", state, strings.TrimSpace(vmRun(t, m, "systemd-analyze").Stdout),
		vmRun(t, m, "systemd-analyze blame --no-pager | head -8").Stdout)

	mustVMRun(t, m, "orbit fetch oci-archive:/opt/orbit-test/demo.oci.tar")
	if out := mustVMRun(t, m, "orbit run demo --exec=/bin/echo -- hello-from-vm"); !strings.Contains(out, "hello-from-vm") {
		t.Fatalf("orbit run printed %q, want hello-from-vm", out)
	}

	r = vmRun(t, m, `systemd-run --unit=orbit-test -p Delegate=yes --wait orbit run demo --exec=/bin/sh -- -c 'echo line-from-app; exit 3'`)
	if r.Code != 3 {
		t.Errorf("systemd-run --wait: exit %d, want the app's 3\nstdout: %s\nstderr: %s", r.Code, r.Stdout, r.Stderr)
	}
	if !strings.Contains(r.Stderr+r.Stdout, "status=3") {
		t.Errorf("systemd-run does not report status=3:\n%s%s", r.Stdout, r.Stderr)
	}
	if out := mustVMRun(t, m, "journalctl -u orbit-test --no-pager -o cat"); !strings.Contains(out, "line-from-app") {
		t.Errorf("journal of orbit-test has no app output:\n%s", out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := m.Poweroff(ctx); err != nil {
		t.Errorf("poweroff: %v", err)
	}
}

// qemuWith returns the PIDs of QEMU processes whose command line holds s.
func qemuWith(s string) []string {
	var pids []string
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err == nil && strings.Contains(string(b), "qemu-system") && strings.Contains(string(b), s) {
			pids = append(pids, filepath.Base(filepath.Dir(p)))
		}
	}
	return pids
}

// TestVMHarnessLeavesNoMachineBehind: a boot that cannot finish (its
// context ends first, or the guest panics) returns an error and leaves no
// QEMU running.
func TestVMHarnessLeavesNoMachineBehind(t *testing.T) {
	bootVMTools(t)
	img, err := vmImage()
	if err != nil {
		t.Fatal(err)
	}
	t.Run("ContextEnds", func(t *testing.T) {
		tag := fmt.Sprintf("orbit.test=ctx%d", os.Getpid())
		// A deadline far shorter than any boot under TCG.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		m, err := vm.Boot(ctx, img, vm.BootOptions{Append: tag})
		if err == nil {
			m.Close()
			t.Skip("SKIP: the machine booted within 2 s")
		}
		t.Logf("Boot: %s", strings.SplitN(err.Error(), "\n", 2)[0])
		if pids := qemuWith(tag); len(pids) > 0 {
			t.Errorf("Boot failed (%v) but QEMU still runs: %v", err, pids)
		}
	})
	t.Run("GuestPanics", func(t *testing.T) {
		tag := fmt.Sprintf("orbit.test=panic%d", os.Getpid())
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		// The initramfs switch_roots to init=, which does not exist: panic.
		m, err := vm.Boot(ctx, img, vm.BootOptions{Append: tag + " init=/nonexistent"})
		if err == nil {
			m.Close()
			t.Fatal("Boot with a missing init succeeded")
		}
		t.Logf("Boot: %s", strings.SplitN(err.Error(), "\n", 2)[0])
		if pids := qemuWith(tag); len(pids) > 0 {
			t.Errorf("Boot failed (%v) but QEMU still runs: %v", err, pids)
		}
	})
}
