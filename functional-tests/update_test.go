//go:build functional

package functional

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/orbit-pods/orbit/os/slot"
	"github.com/orbit-pods/orbit/os/update/omaha"
	"github.com/orbit-pods/orbit/os/update/payload"
	"github.com/orbit-pods/orbit/os/update/testdisk"
)

// updateHost is a machine for the update agent without a VM: a GPT disk
// image file with USR-A running, the loader's environment block, an ESP
// directory, and the agent's files, all under one temp directory; plus a
// signing key and a payload directory an Omaha server serves.
type updateHost struct {
	t        *testing.T
	dir      string
	m        *testdisk.Machine
	keys     string // trusted public keys
	priv     string // signing key
	payloads string // DIR/CHANNEL/*.payload
}

func newUpdateHost(t *testing.T) *updateHost {
	t.Helper()
	if _, err := exec.LookPath("sgdisk"); err != nil {
		t.Fatalf("sgdisk is needed (gdisk; scripts/install-deps): %v", err)
	}
	if _, err := os.Stat(filepath.Join(build, "bin", "orbit-update")); err != nil {
		t.Fatalf("build/bin/orbit-update missing (make binaries): %v", err)
	}
	dir := t.TempDir()
	m, err := testdisk.New(filepath.Join(dir, "machine"))
	if err != nil {
		t.Fatal(err)
	}
	h := &updateHost{t: t, dir: dir, m: m, keys: filepath.Join(dir, "keys"), priv: filepath.Join(dir, "signing.pem"), payloads: filepath.Join(dir, "payloads")}
	os.MkdirAll(h.keys, 0o755)
	h.run("payload", "keygen", "--private", h.priv, "--public", filepath.Join(h.keys, "orbit.pem"))
	h.setVersion("1.0.0")
	os.WriteFile(filepath.Join(dir, "machine-id"), []byte("4f1c0e4a2b8d4f6e9a1b2c3d4e5f6a7b\n"), 0o644)
	return h
}

func (h *updateHost) setVersion(v string) {
	os.WriteFile(filepath.Join(h.dir, "os-release"), []byte("ID=orbit\nVERSION_ID="+v+"\n"), 0o644)
}

// run runs orbit-update and fails the test unless it succeeds.
func (h *updateHost) run(args ...string) string {
	h.t.Helper()
	out, err := exec.Command(filepath.Join(build, "bin", "orbit-update"), args...).CombinedOutput()
	if err != nil {
		h.t.Fatalf("orbit-update %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// agentArgs point a machine command at the host's files.
func (h *updateHost) agentArgs(cmd, server, active, bootID string) []string {
	conf := filepath.Join(h.dir, "update.conf")
	os.WriteFile(conf, []byte("GROUP=stable\nSERVER="+server+"\nREBOOT_STRATEGY=etcd-lock\n"), 0o644)
	return []string{cmd, "--conf", conf, "--keys", h.keys, "--disk", h.m.Disk, "--esp", h.m.ESP, "--grubenv", h.m.Env,
		"--slot", active, "--boot-id", bootID, "--state-dir", filepath.Join(h.dir, "state"),
		"--status-file", filepath.Join(h.dir, "run", "status"), "--reboot-required", filepath.Join(h.dir, "run", "reboot-required"),
		"--os-release", filepath.Join(h.dir, "os-release"), "--machine-id-file", filepath.Join(h.dir, "machine-id")}
}

// publish builds a signed payload for version with the real builder.
func (h *updateHost) publish(version string, usrSize int, key string) string {
	h.t.Helper()
	in, err := testdisk.Inputs(h.dir, version, usrSize)
	if err != nil {
		h.t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(h.payloads, "stable"), 0o755)
	out := filepath.Join(h.payloads, "stable", version+".payload")
	h.run("payload", "build", "--usr", in[0].Path, "--kernel", in[1].Path, "--initrd", in[2].Path, "--slot-cfg", in[3].Path,
		"--version", version, "--key", key, "-o", out)
	return out
}

// serve starts `orbit-update serve` on a loopback port and returns its
// URL and the file it logs events to.
func (h *updateHost) serve() (string, string) {
	h.t.Helper()
	events := filepath.Join(h.dir, "events.jsonl")
	cmd := exec.Command(filepath.Join(build, "bin", "orbit-update"), "serve", "--dir", h.payloads, "--listen", "127.0.0.1:0", "--events", events)
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	// Gone with the test binary even when it is killed before its cleanup.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		h.t.Fatalf("orbit-update serve: %v", err)
	}
	base := strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(line), "listening on "), "/")
	return base + "/v1/update/", events
}

func readEvents(t *testing.T, path string) []omaha.Event {
	t.Helper()
	evs, err := parseEvents(path)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// parseEvents reads the JSON lines `orbit-update serve --events` writes.
func parseEvents(path string) ([]omaha.Event, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var evs []omaha.Event
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var e omaha.Event
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			return nil, fmt.Errorf("event line %q: %w", l, err)
		}
		evs = append(evs, e)
	}
	return evs, nil
}

func hasEvent(evs []omaha.Event, version string, typ omaha.EventType, res omaha.EventResult, code int) bool {
	for _, e := range evs {
		if e.Version == version && e.Type == typ && e.Result == res && e.ErrorCode == code && e.MachineID == "4f1c0e4a2b8d4f6e9a1b2c3d4e5f6a7b" {
			return true
		}
	}
	return false
}

func TestUpdateFromOmahaServerThenBootAndComplete(t *testing.T) {
	h := newUpdateHost(t)
	h.publish("1.1.0", 1<<20, h.priv)
	h.publish("1.2.0", 2<<20, h.priv)
	server, events := h.serve()

	out := h.run(h.agentArgs("check", server, slot.A, "boot-1")...)
	if !strings.Contains(out, "update available: 1.2.0") {
		t.Fatalf("check: %s", out)
	}
	out = h.run(h.agentArgs("apply", server, slot.A, "boot-1")...)
	if !strings.Contains(out, "applied 1.2.0 to slot B") {
		t.Fatalf("apply: %s", out)
	}
	st, _ := os.ReadFile(filepath.Join(h.dir, "run", "status"))
	t.Logf("status file:\n%s", st)
	for _, want := range []string{"STATE=UPDATE_STATUS_UPDATED_NEED_REBOOT", "NEW_VERSION=1.2.0", "NEW_SLOT=B", "REBOOT_STRATEGY=etcd-lock"} {
		if !strings.Contains(string(st), want+"\n") {
			t.Errorf("status file lacks %s", want)
		}
	}
	if _, err := os.Stat(filepath.Join(h.dir, "run", "reboot-required")); err != nil {
		t.Error(err)
	}
	// The loader's environment now boots B, with tries.
	la, lb, err := h.m.Store().Loader()
	if err != nil {
		t.Fatal(err)
	}
	if pick, _ := slot.Pick(la, lb); pick.Name != slot.B || lb.Tries != 3 {
		t.Errorf("loader after apply: %v %v", la, lb)
	}
	usr, _ := os.ReadFile(filepath.Join(h.dir, "1.2.0-usr"))
	if got, _ := h.m.SlotBytes(slot.B, int64(len(usr))); !bytes.Equal(got, usr) {
		t.Error("slot B does not hold 1.2.0's /usr")
	}
	t.Log(h.run(h.agentArgs("status", server, slot.A, "boot-1")...))

	// The "reboot": B runs 1.2.0 and reaches its target.
	h.setVersion("1.2.0")
	out = h.run(h.agentArgs("mark-good", server, slot.B, "boot-2")...)
	if !strings.Contains(out, "slot B marked good") {
		t.Errorf("mark-good: %s", out)
	}
	evs := readEvents(t, events)
	for _, e := range []struct {
		v   string
		typ omaha.EventType
		res omaha.EventResult
	}{{"1.0.0", omaha.EventUpdateDownloadStarted, omaha.EventResultSuccess}, {"1.0.0", omaha.EventUpdateDownloadFinished, omaha.EventResultSuccess},
		{"1.0.0", omaha.EventUpdateComplete, omaha.EventResultSuccess}, {"1.2.0", omaha.EventUpdateComplete, omaha.EventResultSuccessReboot}} {
		if !hasEvent(evs, e.v, e.typ, e.res, 0) {
			t.Errorf("the server saw no event %d/%d from %s: %+v", e.typ, e.res, e.v, evs)
		}
	}
	_, b, _ := h.m.Store().Read()
	if !b.Successful {
		t.Errorf("slot B after mark-good: %v", b)
	}
	if out := h.run(h.agentArgs("check", server, slot.B, "boot-2")...); !strings.Contains(out, "no update") {
		t.Errorf("check on 1.2.0: %s", out)
	}
}

func TestUpdateRefusesCorruptAndUnsignedPayloads(t *testing.T) {
	h := newUpdateHost(t)
	server, events := h.serve()
	before, err := h.m.SlotTable()
	if err != nil {
		t.Fatal(err)
	}
	try := func(what, wantMsg string) {
		t.Helper()
		cmd := exec.Command(filepath.Join(build, "bin", "orbit-update"), h.agentArgs("apply", server, slot.A, "boot-1")...)
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Fatalf("%s payload applied:\n%s", what, out)
		}
		t.Logf("%s payload: %s", what, out)
		if !strings.Contains(string(out), wantMsg) {
			t.Errorf("%s payload: message lacks %q", what, wantMsg)
		}
		after, _ := h.m.SlotTable()
		if !bytes.Equal(before, after) {
			t.Errorf("%s payload changed the slot table", what)
		}
		if left, _ := filepath.Glob(filepath.Join(h.m.ESP, "B", "*")); len(left) != 0 {
			t.Errorf("%s payload left kernel files: %v", what, left)
		}
	}

	// Signed by a key the machine does not trust.
	other := filepath.Join(h.dir, "other.pem")
	h.run("payload", "keygen", "--private", other, "--public", filepath.Join(h.dir, "other.pub"))
	p := h.publish("1.1.0", 1<<20, other)
	try("unsigned", "refused: the payload is not signed by a key in the update keys directory")
	os.Remove(p)
	os.Remove(p + ".sha256")

	// Signed, then a byte of /usr flipped; the server's SHA-256 is of the
	// corrupt file, so only the signed manifest can catch it.
	p = h.publish("1.2.0", 1<<20, h.priv)
	b, _ := os.ReadFile(p)
	b[len(b)/2] ^= 0xff
	os.WriteFile(p, b, 0o644)
	os.Remove(p + ".sha256")
	try("corrupt", "refused: the payload is corrupt")

	evs := readEvents(t, events)
	if !hasEvent(evs, "1.0.0", omaha.EventUpdateComplete, omaha.EventResultError, 12) || !hasEvent(evs, "1.0.0", omaha.EventUpdateComplete, omaha.EventResultError, 10) {
		t.Errorf("the server did not see both failures: %+v", evs)
	}
	// The verifier agrees, offline.
	out, err := exec.Command(filepath.Join(build, "bin", "orbit-update"), "payload", "verify", "--keys", h.keys, p).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "does not match its signed manifest") {
		t.Errorf("payload verify of the corrupt payload: %v\n%s", err, out)
	}
}

// stallingServer is an Omaha server on loopback whose payload downloads
// stop after a given number of bytes until released, so a test can kill
// the agent in the middle of writing the slot.
type stallingServer struct {
	*omaha.Server
	mu      sync.Mutex
	after   int64         // stall after this many bytes; 0: never
	stalled chan struct{} // closed when a download stalls
	release chan struct{}
}

func (s *stallingServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	after := s.after
	s.mu.Unlock()
	if r.Method != http.MethodGet || after == 0 {
		s.Server.ServeHTTP(w, r)
		return
	}
	rec := &stallWriter{ResponseWriter: w, left: after, stalled: s.stalled, release: s.release, ctx: r.Context()}
	s.Server.ServeHTTP(rec, r)
}

type stallWriter struct {
	http.ResponseWriter
	left    int64
	stalled chan struct{}
	release chan struct{}
	ctx     context.Context
	once    sync.Once
}

func (w *stallWriter) Write(p []byte) (int, error) {
	if w.left <= 0 {
		w.once.Do(func() { close(w.stalled) })
		select {
		case <-w.release:
		case <-w.ctx.Done():
		}
		return 0, io.ErrClosedPipe
	}
	if int64(len(p)) > w.left {
		p = p[:w.left]
	}
	n, err := w.ResponseWriter.Write(p)
	w.left -= int64(n)
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
	return n, err
}

func TestUpdateKilledMidWriteKeepsOldSlotAndIsRetried(t *testing.T) {
	h := newUpdateHost(t)
	h.publish("1.2.0", 6<<20, h.priv)
	srv := &stallingServer{
		Server:  &omaha.Server{AppID: "{8d7b3b7e-52a4-4c1d-9e0b-6f3b0a1c2e55}", Catalog: omaha.DirCatalog(h.payloads, peekPayload)},
		after:   3 << 20,
		stalled: make(chan struct{}),
		release: make(chan struct{}),
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv}
	go hs.Serve(ln)
	t.Cleanup(func() { close(srv.release); hs.Close() })
	server := fmt.Sprintf("http://%s/v1/update/", ln.Addr())
	before, _ := h.m.SlotTable()

	agent := exec.Command(filepath.Join(build, "bin", "orbit-update"), h.agentArgs("apply", server, slot.A, "boot-1")...)
	var agentOut bytes.Buffer
	agent.Stdout, agent.Stderr = &agentOut, &agentOut
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agent.Process.Kill(); agent.Wait() })
	select {
	case <-srv.stalled:
	case <-time.After(2 * time.Minute):
		t.Fatalf("the download never reached the stall point:\n%s", agentOut.String())
	}
	// The agent has had half the payload: wait until the start of the
	// /usr image is in slot B, so the kill lands mid-write.
	usr, _ := os.ReadFile(filepath.Join(h.dir, "1.2.0-usr"))
	waitFor(t, "slot B to be half written", time.Minute, func() bool {
		got, _ := h.m.SlotBytes(slot.B, 1<<20)
		return bytes.Equal(got, usr[:1<<20])
	})
	agent.Process.Kill() // a power cut, as far as the agent knows
	agent.Wait()
	t.Logf("agent killed mid-write:\n%s", agentOut.String())

	after, _ := h.m.SlotTable()
	if !bytes.Equal(before, after) {
		t.Fatal("the slot table changed though the write never finished")
	}
	la, lb, _ := h.m.Store().Loader()
	if pick, _ := slot.Pick(la, lb); pick.Name != slot.A {
		t.Fatalf("the loader would boot %v", pick)
	}
	full, _ := h.m.SlotBytes(slot.B, int64(len(usr)))
	if bytes.Equal(full, usr) {
		t.Fatal("slot B was fully written before the kill; the test did not cut mid-write")
	}

	// The next boot (same slot A) retries: the agent, on its schedule.
	srv.mu.Lock()
	srv.after = 0
	srv.mu.Unlock()
	retry := exec.Command(filepath.Join(build, "bin", "orbit-update"), append(h.agentArgs("agent", server, slot.A, "boot-2"), "--boot-delay", "1ms", "--interval", "1h")...)
	var retryOut bytes.Buffer
	retry.Stdout, retry.Stderr = &retryOut, &retryOut
	if err := retry.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { retry.Process.Kill(); retry.Wait() })
	waitFor(t, "the retried update to finish", 2*time.Minute, func() bool {
		_, err := os.Stat(filepath.Join(h.dir, "run", "reboot-required"))
		return err == nil
	})
	retry.Process.Signal(os.Interrupt)
	retry.Wait()
	t.Logf("agent retry:\n%s", retryOut.String())
	if got, _ := h.m.SlotBytes(slot.B, int64(len(usr))); !bytes.Equal(got, usr) {
		t.Error("slot B does not hold the image after the retry")
	}
	la, lb, _ = h.m.Store().Loader()
	if pick, _ := slot.Pick(la, lb); pick.Name != slot.B {
		t.Errorf("after the retry the loader would boot %v", pick)
	}
	if left, _ := filepath.Glob(filepath.Join(h.m.ESP, "B", "*.orbit-partial")); len(left) != 0 {
		t.Errorf("partial kernel files left: %v", left)
	}
}

func peekPayload(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	m, err := payload.PeekManifest(f)
	if err != nil {
		return "", err
	}
	return m.Version, nil
}

// TestUpdateRollbackIsReported plays the loader's part: after an update
// to B, B's boots fail until its tries are spent (GRUB counts them down in
// its environment block), and the machine comes back on A. The agent on A
// must report the rollback and not apply that version again.
func TestUpdateRollbackIsReported(t *testing.T) {
	h := newUpdateHost(t)
	h.publish("1.2.0", 1<<20, h.priv)
	server, events := h.serve()
	h.run(h.agentArgs("apply", server, slot.A, "boot-1")...)

	env, err := slot.ReadEnvFile(h.m.Env)
	if err != nil {
		t.Fatal(err)
	}
	env["orbit_b_tries"] = "0" // what GRUB leaves after B's last failed try
	if err := slot.WriteEnvFile(h.m.Env, env); err != nil {
		t.Fatal(err)
	}
	la, lb, _ := h.m.Store().Loader()
	if pick, _ := slot.Pick(la, lb); pick.Name != slot.A {
		t.Fatalf("with B's tries spent the loader would boot %v", pick)
	}

	out := h.run(h.agentArgs("apply", server, slot.A, "boot-4")...)
	if !strings.Contains(out, "nothing to apply") {
		t.Errorf("apply after the rollback: %s", out)
	}
	if !hasEvent(readEvents(t, events), "1.0.0", omaha.EventUpdateComplete, omaha.EventResultError, 2000) {
		t.Errorf("no rollback event: %+v", readEvents(t, events))
	}
	st := h.run(h.agentArgs("status", server, slot.A, "boot-4")...)
	t.Logf("status:\n%s", st)
	if !strings.Contains(st, "rolled back: 1.2.0") {
		t.Error("status does not show the rolled back version")
	}
}
