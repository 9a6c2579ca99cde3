//go:build functional

package functional

import (
	"context"
	"crypto/rand"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orbit-pods/orbit/os/diskimage"
	"github.com/orbit-pods/orbit/os/slot"
	"github.com/orbit-pods/orbit/os/update"
	"github.com/orbit-pods/orbit/os/update/omaha"
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

// TestOSUpdateInVM runs the update agent and the reboot manager of the OS
// image, as the image starts them, against an Omaha server on the host:
//
//  1. 1.0.0 on slot A fetches signed 2.0.0, writes B, the reboot manager
//     reboots, B runs and is marked good, the server sees the completion.
//  2. 3.0.0, whose /usr cannot be mounted, is written to A; A fails its two
//     tries, the loader comes back to B by itself, and the agent reports
//     the rollback and does not take 3.0.0 again.
//  3. 4.0.0: the power is cut while the agent writes A; the machine comes
//     back on B with the slot table unchanged, and the agent writes 4.0.0
//     again, to completion.
func TestOSUpdateInVM(t *testing.T) {
	osTools(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Minute)
	defer cancel()
	image, priv := updateImages(t, ctx, dir, "GROUP=stable\nSERVER=http://"+vmUpdateServer+"/v1/update/\nREBOOT_STRATEGY=reboot\n")
	base, next := image("1.0.0"), image("2.0.0")

	srv := filepath.Join(dir, "srv")
	os.MkdirAll(filepath.Join(srv, "stable"), 0o755)
	payload := func(disk, version, out string) {
		t.Helper()
		start := time.Now()
		b, err := exec.Command(filepath.Join(build, "bin", "orbit-update"), "payload", "build", "--from-disk", disk,
			"--version", version, "--key", priv, "-o", out).CombinedOutput()
		if err != nil {
			t.Fatalf("payload build %s: %v: %s", version, err, b)
		}
		t.Logf("payload %s built in %s", version, time.Since(start).Round(time.Millisecond))
	}
	publish := func(version string) {
		t.Helper()
		for _, ext := range []string{"", ".sha256"} {
			if err := os.Rename(filepath.Join(dir, version+".payload"+ext), filepath.Join(srv, "stable", version+".payload"+ext)); err != nil {
				t.Fatal(err)
			}
		}
	}
	payload(next.Disk, "2.0.0", filepath.Join(dir, "2.0.0.payload"))
	payload(next.Disk, "4.0.0", filepath.Join(dir, "4.0.0.payload"))
	// 3.0.0: 2.0.0 with the first MiB of its /usr (the ext4 superblock)
	// no longer matching the verity root hash, signed all the same.
	bad := filepath.Join(dir, "bad.raw")
	if b, err := exec.Command("cp", "--sparse=always", next.Disk, bad).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, b)
	}
	corruptSlot(t, bad, "A")
	payload(bad, "3.0.0", filepath.Join(dir, "3.0.0.payload"))
	os.Remove(bad)
	publish("2.0.0")

	h := &updateHost{t: t, dir: dir, payloads: srv}
	server, events := h.serve()
	hostAddr := strings.TrimSuffix(strings.TrimPrefix(server, "http://"), "/v1/update/")

	o := diskimage.BootOptions()
	o.Flush = true // phase 3 cuts the power
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	o.GuestForwards = map[string]string{vmUpdateServer: "cmd:/usr/bin/env " + relayEnv + "=" + hostAddr + " " + self}
	start := time.Now()
	m := bootMachine(t, ctx, 8*time.Minute, base.VMImage(), o)
	slotOf := func() string {
		t.Helper()
		out := mustVMRun(t, m, "cat /proc/cmdline")
		i := strings.Index(out, "orbit.slot=")
		if i < 0 {
			t.Fatalf("no orbit.slot= on the command line: %s", out)
		}
		return out[i+len("orbit.slot=") : i+len("orbit.slot=")+1]
	}
	journal := func() string {
		return vmRun(t, m, "journalctl -b -o cat -u orbit-update -u orbit-rebootmgr -u orbit-slot-good --no-pager | tail -n 40").Stdout
	}

	// 1. The agent writes 2.0.0 to B on its own and the reboot manager
	// reboots: no command from the test until B is up.
	if err := m.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("1.0.0 on A to 2.0.0 on B, agent and reboot manager on their own: %s", time.Since(start).Round(time.Second))
	vmRun(t, m, "systemctl is-system-running --wait")
	if s := slotOf(); s != "B" {
		t.Fatalf("booted %s after the update, want B\n%s", s, journal())
	}
	if v := mustVMRun(t, m, ". /etc/os-release; echo $VERSION_ID"); strings.TrimSpace(v) != "2.0.0" {
		t.Errorf("B runs version %q, want 2.0.0", v)
	}
	if !waitEvent(ctx, events, "2.0.0", omaha.EventUpdateComplete, omaha.EventResultSuccessReboot, 0) {
		t.Fatalf("the server saw no completion of 2.0.0: %+v\n%s", readEvents(t, events), journal())
	}
	st := mustVMRun(t, m, "orbit-slot status")
	t.Logf("on B:\n%s", st)
	if !strings.Contains(st, "gpt:    B priority=2 tries=0 successful=true") {
		t.Errorf("B is not marked good")
	}

	// 2. A bad update falls back to B and is reported as a rollback.
	publish("3.0.0")
	start = time.Now()
	if err := m.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("3.0.0 written to A, two failed tries, back on B: %s", time.Since(start).Round(time.Second))
	vmRun(t, m, "systemctl is-system-running --wait")
	if s := slotOf(); s != "B" {
		t.Fatalf("booted %s after the bad update, want B", s)
	}
	if n := strings.Count(m.Console(), "slot A: cannot mount /usr"); n < 2 {
		t.Errorf("the initramfs failed A's /usr %d times, want its 2 tries", n)
	}
	if !waitEvent(ctx, events, "2.0.0", omaha.EventUpdateComplete, omaha.EventResultError, update.ErrorCodeRollback) {
		t.Fatalf("the server saw no rollback: %+v\n%s", readEvents(t, events), journal())
	}
	st = mustVMRun(t, m, "orbit-slot status")
	t.Logf("after the rollback:\n%s", st)
	if !strings.Contains(st, "booted: B\n") || !strings.Contains(st, "next:   B") {
		t.Errorf("not settled on B")
	}
	// Still offered, 3.0.0 is not written again.
	time.Sleep(20 * time.Second)
	if out := mustVMRun(t, m, "cat /run/orbit-update/status; journalctl -b -o cat -u orbit-update | grep -c 'was rolled back on this machine before' || true"); !strings.Contains(out, "STATE=UPDATE_STATUS_IDLE") {
		t.Errorf("the agent is not idle with 3.0.0 offered:\n%s", out)
	}

	// 3. Power cut while 4.0.0 is written to A. The machine is to stay on
	// B afterwards: no reboot manager reboot once the retry succeeds.
	mustVMRun(t, m, "mkdir -p /etc/orbit && echo REBOOT_STRATEGY=off > /etc/orbit/update.conf && sync")
	table := "dd if=/dev/vda bs=512 count=34 status=none | sha256sum; orbit-slot status"
	before := mustVMRun(t, m, table)
	publish("4.0.0")
	deadline := time.Now().Add(5 * time.Minute)
	for {
		r := vmRun(t, m, "grep -q STATE=UPDATE_STATUS_DOWNLOADING /run/orbit-update/status && grep -q NEW_VERSION=4.0.0 /run/orbit-update/status")
		if r.Code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent never started on 4.0.0\n%s", journal())
		}
		time.Sleep(time.Second)
	}
	time.Sleep(3 * time.Second)
	if out := mustVMRun(t, m, "cat /run/orbit-update/status"); !strings.Contains(out, "STATE=UPDATE_STATUS_DOWNLOADING") {
		t.Fatalf("the write ended before the cut:\n%s", out)
	}
	start = time.Now()
	if err := m.PowerCut(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("power cut mid-write, back up in %s", time.Since(start).Round(time.Second))
	if s := slotOf(); s != "B" {
		t.Fatalf("booted %s after the power cut, want B", s)
	}
	if after := mustVMRun(t, m, table); after != before {
		t.Errorf("the slot table changed across the cut:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	deadline = time.Now().Add(10 * time.Minute)
	for vmRun(t, m, "grep -q STATE=UPDATE_STATUS_UPDATED_NEED_REBOOT /run/orbit-update/status").Code != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("4.0.0 was not written again after the cut\n%s", journal())
		}
		time.Sleep(2 * time.Second)
	}
	st = mustVMRun(t, m, "cat /run/orbit-update/status; orbit-slot status")
	t.Logf("after the retry:\n%s", st)
	if !strings.Contains(st, "NEW_VERSION=4.0.0") || !strings.Contains(st, "next:   A") {
		t.Errorf("4.0.0 is not set to boot next on A")
	}

	pctx, pcancel := context.WithTimeout(ctx, 3*time.Minute)
	defer pcancel()
	if err := m.Poweroff(pctx); err != nil {
		t.Errorf("poweroff: %v", err)
	}
}

// updateImages returns a builder of the OS image at a version, with the
// test update key, updateConf as the OS's update.conf, and the update agent
// on a test's schedule (first check at once, then every 15 seconds; two
// tries for a new slot); priv signs payloads for it.
func updateImages(t *testing.T, ctx context.Context, dir, updateConf string) (image func(version string) *diskimage.Image, priv string) {
	t.Helper()
	cache := osCache()
	os.MkdirAll(cache, 0o755)
	priv, pub := updateKey(t, cache)
	conf := filepath.Join(dir, "update.conf")
	os.WriteFile(conf, []byte(updateConf), 0o644)
	dropin := filepath.Join(dir, "test.conf")
	os.WriteFile(dropin, []byte("[Service]\nExecStart=\nExecStart=/usr/local/bin/orbit-update agent --boot-delay=1s --interval=15s --jitter=1s --retry=5s --tries=2\n"), 0o644)
	return func(version string) *diskimage.Image {
		t.Helper()
		img, built, err := diskimage.Build(ctx, diskimage.Spec{CacheDir: cache, Build: build, Version: version, Files: map[string]string{
			"/usr/share/orbit/update-keys/test.pem":                   pub,
			"/usr/share/orbit/update.conf":                            conf,
			"/etc/systemd/system/orbit-update.service.d/10-test.conf": dropin,
		}}, func(f string, a ...any) { t.Logf("os: "+f, a...) })
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("image %s %s (built now: %v)", version, img.Disk, built)
		return img
	}, priv
}

// corruptSlot overwrites the first MiB of slot name's partition in the
// disk image file with random bytes.
func corruptSlot(t *testing.T, disk, name string) {
	t.Helper()
	d, err := slot.Open(disk, false)
	if err != nil {
		t.Fatal(err)
	}
	off, _, err := d.PartitionOffset(name)
	d.Close()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(disk, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	junk := make([]byte, 1<<20)
	rand.Read(junk)
	if _, err := f.WriteAt(junk, off); err != nil {
		t.Fatal(err)
	}
}

// waitEvent waits up to three minutes for the server to log the event.
func waitEvent(ctx context.Context, events, version string, typ omaha.EventType, res omaha.EventResult, code int) bool {
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		// A line being written reads as an error: look again.
		if evs, err := parseEvents(events); err == nil && hasVMEvent(evs, version, typ, res, code) {
			return true
		}
		time.Sleep(2 * time.Second)
	}
	return false
}

func hasVMEvent(evs []omaha.Event, version string, typ omaha.EventType, res omaha.EventResult, code int) bool {
	for _, e := range evs {
		if (version == "" || e.Version == version) && e.Type == typ && e.Result == res && e.ErrorCode == code {
			return true
		}
	}
	return false
}
