package update

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orbit-pods/orbit/os/slot"
	"github.com/orbit-pods/orbit/os/update/omaha"
	"github.com/orbit-pods/orbit/os/update/payload"
)

// serve publishes payloads of the fixture on a loopback Omaha server.
func (f *fixture) serve(t *testing.T, channel string, versions ...string) (*omaha.Server, string) {
	t.Helper()
	root := filepath.Join(f.dir, "srv")
	if err := os.MkdirAll(filepath.Join(root, channel), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, v := range versions {
		p, _ := f.payload(t, v, 64<<10)
		if err := os.WriteFile(filepath.Join(root, channel, v+".payload"), p, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s := &omaha.Server{AppID: DefaultAppID, Catalog: omaha.DirCatalog(root, func(p string) (string, error) {
		fh, err := os.Open(p)
		if err != nil {
			return "", err
		}
		defer fh.Close()
		m, err := payload.PeekManifest(fh)
		if err != nil {
			return "", err
		}
		return m.Version, nil
	})}
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	return s, hs.URL + "/v1/update/"
}

// serveMore publishes more payloads on a channel served by serve.
func (f *fixture) serveMore(t *testing.T, channel string, versions ...string) {
	t.Helper()
	for _, v := range versions {
		p, _ := f.payload(t, v, 64<<10)
		if err := os.WriteFile(filepath.Join(f.dir, "srv", channel, v+".payload"), p, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func (f *fixture) agent(server, active, version, boot string) *Agent {
	return &Agent{
		Config:  Config{Group: "stable", Server: server, RebootStrategy: "off", AppID: DefaultAppID},
		Target:  *f.target(active),
		Version: version, MachineID: "0123456789abcdef0123456789abcdef", BootID: boot,
		StateDir: filepath.Join(f.dir, "state"), StatusFile: filepath.Join(f.dir, "run", "status"),
		RebootRequired: filepath.Join(f.dir, "run", "reboot-required"),
	}
}

func eventsOf(s *omaha.Server) []string {
	var out []string
	for _, e := range s.Events() {
		out = append(out, fmt.Sprintf("%s/%d/%d/%d", e.Version, e.Type, e.Result, e.ErrorCode))
	}
	return out
}

func TestUpdateThenBootThenComplete(t *testing.T) {
	f := newFixture(t)
	srv, url := f.serve(t, "stable", "1.1.0", "1.2.0")
	ctx := context.Background()

	a := f.agent(url, slot.A, "1.0.0", "boot-1")
	v, err := a.Update(ctx)
	if err != nil || v != "1.2.0" {
		t.Fatalf("update: %q %v", v, err)
	}
	st, _ := ReadStatus(a.StatusFile)
	if st["STATE"] != StatusNeedReboot || st["NEW_VERSION"] != "1.2.0" || st["NEW_SLOT"] != slot.B {
		t.Errorf("status after apply: %v", st)
	}
	if _, err := os.Stat(a.RebootRequired); err != nil {
		t.Errorf("reboot-required: %v", err)
	}
	// Before the reboot, another round does nothing.
	if v, err := a.Update(ctx); err != nil || v != "" {
		t.Errorf("second round before reboot: %q %v", v, err)
	}

	// The reboot: B runs; until it is marked good nothing is reported.
	b := f.agent(url, slot.B, "1.2.0", "boot-2")
	if waiting, err := b.Reconcile(ctx); err != nil || !waiting {
		t.Fatalf("reconcile before mark-good: %v %v", waiting, err)
	}
	// A newer version appears: it must not overwrite A, the fallback,
	// while B is not yet good.
	f.serveMore(t, "stable", "1.3.0")
	if v, err := b.Update(ctx); err != nil || v != "" {
		t.Fatalf("round before mark-good: %q %v", v, err)
	}
	if a, _ := f.m.SlotBytes(slot.A, 4096); !bytes.Equal(a, bytes.Repeat([]byte{0xAA}, 4096)) {
		t.Fatal("slot A was written before B was marked good")
	}
	if err := f.m.Store().MarkGood(slot.B); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(eventsOf(srv), " ")
	want := "1.0.0/13/1/0 1.0.0/14/1/0 1.0.0/3/1/0 1.2.0/3/2/0"
	if got != want {
		t.Errorf("events %s, want %s", got, want)
	}
	if s, _ := LoadState(b.StateDir); s.Pending != nil {
		t.Errorf("still pending: %+v", s.Pending)
	}
	// Now B is good, 1.3.0 goes to A.
	if v, err := b.Update(ctx); err != nil || v != "1.3.0" {
		t.Errorf("round on a good 1.2.0: %q %v", v, err)
	}
}

func TestRollbackIsReportedAndNotRetried(t *testing.T) {
	f := newFixture(t)
	srv, url := f.serve(t, "stable", "1.2.0")
	ctx := context.Background()
	a := f.agent(url, slot.A, "1.0.0", "boot-1")
	if v, err := a.Update(ctx); err != nil || v != "1.2.0" {
		t.Fatalf("update: %q %v", v, err)
	}
	// The loader gave B up: the machine is back on A, on another boot.
	back := f.agent(url, slot.A, "1.0.0", "boot-3")
	if v, err := back.Update(ctx); err != nil || v != "" {
		t.Fatalf("round after rollback: %q %v", v, err)
	}
	evs := eventsOf(srv)
	if last := evs[len(evs)-1]; last != "1.0.0/3/0/2000" {
		t.Errorf("last event %s, want the rollback 1.0.0/3/0/2000 (all: %v)", last, evs)
	}
	s, _ := LoadState(back.StateDir)
	if len(s.Failed) != 1 || s.Failed[0] != "1.2.0" || s.Pending != nil {
		t.Errorf("state after rollback: %+v", s)
	}
}

func TestBadPayloadFromServerIsReportedAsError(t *testing.T) {
	f := newFixture(t)
	srv, url := f.serve(t, "stable", "1.2.0")
	p := filepath.Join(f.dir, "srv", "stable", "1.2.0.payload")
	b, _ := os.ReadFile(p)
	b[len(b)/2] ^= 0xff
	os.WriteFile(p, b, 0o644)
	before, _ := f.m.SlotTable()
	a := f.agent(url, slot.A, "1.0.0", "boot-1")
	_, err := a.Update(context.Background())
	if err == nil || !strings.Contains(err.Error(), "does not match its signed manifest") {
		t.Fatalf("update of a corrupt payload: %v", err)
	}
	after, _ := f.m.SlotTable()
	if string(before) != string(after) {
		t.Error("slot table changed")
	}
	evs := eventsOf(srv)
	if last := evs[len(evs)-1]; last != "1.0.0/3/0/10" {
		t.Errorf("last event %s, want 1.0.0/3/0/10", last)
	}
	st, _ := ReadStatus(a.StatusFile)
	if st["STATE"] != StatusIdle || !strings.Contains(st["LAST_ERROR"], "signed manifest") {
		t.Errorf("status: %v", st)
	}
}
