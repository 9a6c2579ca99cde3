package update

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"time"

	"github.com/orbit-pods/orbit/os/slot"
	"github.com/orbit-pods/orbit/os/update/omaha"
	"github.com/orbit-pods/orbit/os/update/payload"
)

// Error codes on failed events, in update_engine's numbering where it has
// one, so servers written for Container Linux show them sensibly.
const (
	ErrorCodeGeneric      = 1
	ErrorCodeDownload     = 9
	ErrorCodeHashMismatch = 10
	ErrorCodeSignature    = 12
	ErrorCodeVerify       = 15
	ErrorCodeRollback     = 2000 // Orbit's: the new slot never reached its target
)

// Agent checks for, applies and reports updates for one machine.
type Agent struct {
	Config    Config
	Target    Target
	Version   string // the running OS version
	MachineID string
	BootID    string
	// StateDir, StatusFile and RebootRequired default to the package's paths.
	StateDir, StatusFile, RebootRequired string
	HTTP                                 *http.Client
	Log                                  *log.Logger
}

func (a *Agent) logf(format string, args ...any) {
	if a.Log != nil {
		a.Log.Printf(format, args...)
	}
}

func (a *Agent) stateDir() string   { return or(a.StateDir, StateDir) }
func (a *Agent) statusFile() string { return or(a.StatusFile, StatusFile) }
func (a *Agent) rebootFile() string { return or(a.RebootRequired, RebootRequired) }

func or(v, d string) string {
	if v != "" {
		return v
	}
	return d
}

func (a *Agent) client() *omaha.Client {
	return &omaha.Client{URL: a.Config.Server, HTTP: a.HTTP}
}

// request builds an Omaha request for this machine's app.
func (a *Agent) request(version string, check bool, events ...*omaha.EventRequest) *omaha.Request {
	app := &omaha.AppRequest{
		ID: a.Config.AppID, Version: version, Track: a.Config.Group,
		MachineID: a.MachineID, BootID: a.BootID, Board: "amd64-usr",
		Events: events,
	}
	if check {
		app.Ping = &omaha.Ping{Active: 1}
		app.UpdateCheck = &omaha.UpdateCheck{}
	}
	return &omaha.Request{
		Version: "orbit-update", UpdaterVersion: "orbit-update", InstallSource: "scheduler", IsMachine: 1,
		OS:   &omaha.OS{Platform: "Orbit", Version: a.Version, Arch: "x86_64"},
		Apps: []*omaha.AppRequest{app},
	}
}

// Event reports one event to the Omaha server; with no SERVER configured
// (a payload applied by hand) there is nobody to tell.
func (a *Agent) Event(ctx context.Context, version string, e *omaha.EventRequest) error {
	if a.Config.Server == "" {
		return nil
	}
	resp, err := a.client().Do(ctx, a.request(version, false, e))
	if err != nil {
		return fmt.Errorf("report event %d/%d: %w", e.Type, e.Result, err)
	}
	if _, err := resp.App(a.Config.AppID); err != nil {
		return fmt.Errorf("report event %d/%d: %w", e.Type, e.Result, err)
	}
	return nil
}

// Check asks the server for an update: nil when there is none.
func (a *Agent) Check(ctx context.Context) (*omaha.Offer, error) {
	if a.Config.Server == "" {
		return nil, fmt.Errorf("no SERVER in update.conf")
	}
	resp, err := a.client().Do(ctx, a.request(a.Version, true))
	if err != nil {
		return nil, fmt.Errorf("update check: %w", err)
	}
	app, err := resp.App(a.Config.AppID)
	if err != nil {
		return nil, fmt.Errorf("update check: %w", err)
	}
	return app.UpdateCheck.Offer()
}

// Reconcile settles an update applied before this boot: reported complete
// once the new slot runs and is marked good, or reported as a rollback when
// the loader fell back to the old slot. It returns whether an update is
// still in flight (waiting for the reboot, or booted but not yet marked
// good), when no other update may be written.
func (a *Agent) Reconcile(ctx context.Context) (waiting bool, err error) {
	st, err := LoadState(a.stateDir())
	if err != nil || st.Pending == nil {
		return false, err
	}
	p := st.Pending
	if p.BootID == a.BootID {
		return true, nil
	}
	if a.Target.Active == p.Slot {
		s, err := a.slot(p.Slot)
		if err != nil {
			return false, err
		}
		if !s.Successful {
			// Not yet marked good: the mark-good unit runs once the target is
			// reached. Until then nothing is reported, and no other update
			// is written: the passive slot is this boot's fallback.
			return true, nil
		}
		if err := a.Event(ctx, p.Version, &omaha.EventRequest{Type: omaha.EventUpdateComplete,
			Result: omaha.EventResultSuccessReboot, PreviousVersion: p.PreviousVersion}); err != nil {
			return false, err
		}
		a.logf("update to %s complete: slot %s runs and is marked good", p.Version, p.Slot)
		st.Pending = nil
		return false, st.Save(a.stateDir())
	}
	// Booted, but not into the new slot: the loader gave it up.
	if err := a.Event(ctx, a.Version, &omaha.EventRequest{Type: omaha.EventUpdateComplete,
		Result: omaha.EventResultError, ErrorCode: ErrorCodeRollback, PreviousVersion: p.Version}); err != nil {
		return false, err
	}
	a.logf("update to %s rolled back: slot %s did not reach its target, running %s on slot %s", p.Version, p.Slot, a.Version, a.Target.Active)
	st.Failed = append(st.Failed, p.Version)
	st.Pending = nil
	return false, st.Save(a.stateDir())
}

func (a *Agent) slot(name string) (slot.Slot, error) {
	d, err := slot.Open(a.Target.Slots.Disk, false)
	if err != nil {
		return slot.Slot{}, err
	}
	defer d.Close()
	return d.Slot(name)
}

// Update runs one round: settle the last update, check, and if a new
// version is offered, download and apply it. It returns the version
// applied, or "" when there was nothing to do.
func (a *Agent) Update(ctx context.Context) (string, error) {
	waiting, err := a.Reconcile(ctx)
	if err != nil {
		a.logf("%v", err)
	}
	if waiting {
		return "", nil
	}
	a.status(StatusChecking, nil)
	offer, err := a.Check(ctx)
	if err != nil {
		a.status(StatusIdle, err)
		return "", err
	}
	if offer == nil {
		a.status(StatusIdle, nil)
		return "", nil
	}
	st, err := LoadState(a.stateDir())
	if err != nil {
		return "", err
	}
	if st.failed(offer.Version) {
		a.logf("version %s was rolled back on this machine before; not applying it again", offer.Version)
		a.status(StatusIdle, nil)
		return "", nil
	}
	if err := a.Download(ctx, offer); err != nil {
		a.status(StatusReportingError, err)
		code := errorCode(err)
		if rerr := a.Event(ctx, a.Version, &omaha.EventRequest{Type: omaha.EventUpdateComplete, Result: omaha.EventResultError, ErrorCode: code}); rerr != nil {
			a.logf("%v", rerr)
		}
		a.status(StatusIdle, err)
		return "", err
	}
	return offer.Version, nil
}

func errorCode(err error) int {
	switch {
	case errors.Is(err, payload.ErrUnsigned):
		return ErrorCodeSignature
	case errors.Is(err, payload.ErrCorrupt):
		return ErrorCodeHashMismatch
	case errors.Is(err, errDownload):
		return ErrorCodeDownload
	}
	return ErrorCodeGeneric
}

var errDownload = errors.New("download failed")

// Download fetches an offered payload and applies it.
func (a *Agent) Download(ctx context.Context, offer *omaha.Offer) error {
	if err := a.Event(ctx, a.Version, &omaha.EventRequest{Type: omaha.EventUpdateDownloadStarted, Result: omaha.EventResultSuccess}); err != nil {
		a.logf("%v", err)
	}
	a.status(StatusDownloading, nil, "NEW_VERSION", offer.Version)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, offer.URL, nil)
	if err != nil {
		return fmt.Errorf("%w: %v", errDownload, err)
	}
	hc := a.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %v", errDownload, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: GET %s: %s", errDownload, offer.URL, resp.Status)
	}
	var body io.Reader = resp.Body
	if offer.Size > 0 {
		body = io.LimitReader(resp.Body, offer.Size)
	}
	a.logf("downloading %s from %s", offer.Version, offer.URL)
	return a.Install(ctx, body, offer.SHA256, offer.Version)
}

// Install applies a payload stream (want: its SHA-256 if known) and records
// it as pending; expectVersion, if set, must be the signed version.
func (a *Agent) Install(ctx context.Context, r io.Reader, want []byte, expectVersion string) error {
	m, err := a.Target.Apply(r, want)
	if err != nil {
		return fmt.Errorf("apply update: %w", err)
	}
	if expectVersion != "" && m.Version != expectVersion {
		// Already switched: the signature is good, only the label differs.
		a.logf("payload is signed as version %s, the server offered %s", m.Version, expectVersion)
	}
	passive, _ := a.Target.Passive()
	st, err := LoadState(a.stateDir())
	if err != nil {
		return err
	}
	st.Pending = &Pending{Version: m.Version, Slot: passive, PreviousVersion: a.Version,
		PreviousSlot: a.Target.Active, BootID: a.BootID, Applied: time.Now().UTC()}
	if err := st.Save(a.stateDir()); err != nil {
		return err
	}
	if err := a.Event(ctx, a.Version, &omaha.EventRequest{Type: omaha.EventUpdateDownloadFinished, Result: omaha.EventResultSuccess}); err != nil {
		a.logf("%v", err)
	}
	if err := a.Event(ctx, a.Version, &omaha.EventRequest{Type: omaha.EventUpdateComplete, Result: omaha.EventResultSuccess}); err != nil {
		a.logf("%v", err)
	}
	a.status(StatusNeedReboot, nil, "NEW_VERSION", m.Version, "NEW_SLOT", passive)
	if err := writeAtomic(a.rebootFile(), nil); err != nil {
		return err
	}
	a.logf("update %s written to slot %s; reboot to use it", m.Version, passive)
	return nil
}

// status writes the status file; failures to write it are logged only.
func (a *Agent) status(state string, lastErr error, kv ...string) {
	s := Status{
		"STATE": state, "CURRENT_VERSION": a.Version, "CURRENT_SLOT": a.Target.Active,
		"GROUP": a.Config.Group, "REBOOT_STRATEGY": a.Config.RebootStrategy,
		"LAST_CHECK": unixTime(time.Now()),
	}
	if st, err := LoadState(a.stateDir()); err == nil && st.Pending != nil {
		s["NEW_VERSION"], s["NEW_SLOT"] = st.Pending.Version, st.Pending.Slot
		if st.Pending.BootID == a.BootID {
			s["STATE"] = StatusNeedReboot
		}
	}
	for i := 0; i+1 < len(kv); i += 2 {
		s[kv[i]] = kv[i+1]
	}
	if lastErr != nil {
		s["LAST_ERROR"] = lastErr.Error()
	}
	if err := WriteStatus(a.statusFile(), s); err != nil {
		a.logf("%v", err)
	}
}

// ReadBootID returns the kernel's id of this boot.
func ReadBootID() (string, error) {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return "", fmt.Errorf("read boot id: %w", err)
	}
	return string(trimNL(b)), nil
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}
