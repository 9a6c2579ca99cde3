package update

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// State is what the agent keeps across reboots, in StateDir/state.json.
type State struct {
	// Pending is the update written and switched to, not yet reported as
	// booted or rolled back.
	Pending *Pending `json:"pending,omitempty"`
	// Failed are versions that were rolled back; they are not applied
	// again automatically (`orbit-update apply` still can).
	Failed []string `json:"failed,omitempty"`
}

// Pending is an update waiting to be booted.
type Pending struct {
	Version         string    `json:"version"`
	Slot            string    `json:"slot"`
	PreviousVersion string    `json:"previousVersion"`
	PreviousSlot    string    `json:"previousSlot"`
	BootID          string    `json:"bootId"` // of the boot that applied it
	Applied         time.Time `json:"applied"`
}

func statePath(dir string) string { return filepath.Join(dir, "state.json") }

// LoadState reads the state; none yet is an empty state.
func LoadState(dir string) (State, error) {
	var s State
	b, err := os.ReadFile(statePath(dir))
	if os.IsNotExist(err) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("read update state: %w", err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("read update state %s: %w", statePath(dir), err)
	}
	return s, nil
}

// Save writes the state atomically.
func (s State) Save(dir string) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(statePath(dir), append(b, '\n'))
}

func (s State) failed(v string) bool {
	for _, f := range s.Failed {
		if f == v {
			return true
		}
	}
	return false
}

func writeAtomic(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// Status values, named as Container Linux's update_engine named them, so
// a reboot manager written for locksmith reads them as it did.
const (
	StatusIdle           = "UPDATE_STATUS_IDLE"
	StatusChecking       = "UPDATE_STATUS_CHECKING_FOR_UPDATE"
	StatusDownloading    = "UPDATE_STATUS_DOWNLOADING"
	StatusVerifying      = "UPDATE_STATUS_VERIFYING"
	StatusFinalizing     = "UPDATE_STATUS_FINALIZING"
	StatusNeedReboot     = "UPDATE_STATUS_UPDATED_NEED_REBOOT"
	StatusReportingError = "UPDATE_STATUS_REPORTING_ERROR_EVENT"
)

// Status is the status file: KEY=VALUE lines a shell can source
// (docs/updates.md).
type Status map[string]string

// WriteStatus writes the status file atomically, keys sorted.
func WriteStatus(path string, s Status) error {
	keys := make([]string, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s\n", k, shellQuote(s[k]))
	}
	return writeAtomic(path, []byte(b.String()))
}

// ReadStatus reads a status file.
func ReadStatus(path string) (Status, error) {
	kv, err := readKV(path)
	if err != nil {
		return nil, fmt.Errorf("read update status: %w", err)
	}
	return Status(kv), nil
}

func shellQuote(v string) string {
	if v != "" && strings.IndexFunc(v, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-+:/@{}", r))
	}) < 0 {
		return v
	}
	return "'" + strings.ReplaceAll(strings.ReplaceAll(v, "'", ""), "\n", " ") + "'"
}

func unixTime(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }
