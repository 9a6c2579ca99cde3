package omaha

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Payload is a file a Server offers on a channel.
type Payload struct {
	Version string
	Path    string
	Size    int64
	SHA256  []byte
}

// Catalog finds the payloads of a channel; the server calls it on each
// update check, so payloads dropped in a directory are offered at once.
type Catalog func(channel string) ([]Payload, error)

// Event is an event a client reported, as the server logs it.
type Event struct {
	Time            time.Time   `json:"time"`
	AppID           string      `json:"appid"`
	MachineID       string      `json:"machineid"`
	Version         string      `json:"version"`
	Track           string      `json:"track"`
	Type            EventType   `json:"type"`
	Result          EventResult `json:"result"`
	ErrorCode       int         `json:"errorcode,omitempty"`
	PreviousVersion string      `json:"previousversion,omitempty"`
}

// Server is a small Omaha server: it answers update checks for one app id
// with the newest payload of the asked channel (the track) that is newer
// than the client's version, serves the payloads under /payloads/, and
// logs events as JSON lines.
type Server struct {
	AppID   string
	Catalog Catalog
	// EventLog, if set, gets each event as a JSON line.
	EventLog io.Writer

	mu     sync.Mutex
	events []Event
}

// Events returns the events reported so far.
func (s *Server) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Event(nil), s.events...)
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/payloads/") {
		s.servePayload(w, r)
		return
	}
	if r.Method != http.MethodPost {
		http.Error(w, "POST an omaha request", http.StatusMethodNotAllowed)
		return
	}
	var req Request
	if err := xml.NewDecoder(io.LimitReader(r.Body, maxResponse)).Decode(&req); err != nil {
		http.Error(w, "bad omaha request: "+err.Error(), http.StatusBadRequest)
		return
	}
	resp := &Response{Protocol: Protocol, Server: "orbit-update", DayStart: &DayStart{}}
	for _, a := range req.Apps {
		resp.Apps = append(resp.Apps, s.answer(r, a))
	}
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	io.WriteString(w, xml.Header)
	if err := xml.NewEncoder(w).Encode(resp); err != nil {
		log.Printf("omaha server: write response: %v", err)
	}
}

func (s *Server) answer(r *http.Request, a *AppRequest) *AppResponse {
	ar := &AppResponse{ID: a.ID, Status: StatusOK}
	if !strings.EqualFold(a.ID, s.AppID) {
		ar.Status = StatusUnknown
		return ar
	}
	if a.Ping != nil {
		ar.Ping = &StatusElement{Status: StatusOK}
	}
	for _, e := range a.Events {
		s.record(Event{Time: time.Now().UTC(), AppID: a.ID, MachineID: a.MachineID, Version: a.Version,
			Track: a.Track, Type: e.Type, Result: e.Result, ErrorCode: e.ErrorCode, PreviousVersion: e.PreviousVersion})
		ar.Events = append(ar.Events, &StatusElement{Status: StatusOK})
	}
	if a.UpdateCheck != nil {
		ar.UpdateCheck = s.updateCheck(r, a)
	}
	return ar
}

func (s *Server) updateCheck(r *http.Request, a *AppRequest) *UpdateResponse {
	if !validChannel(a.Track) {
		return &UpdateResponse{Status: "error-noTrack"}
	}
	ps, err := s.Catalog(a.Track)
	if err != nil {
		log.Printf("omaha server: channel %s: %v", a.Track, err)
		return &UpdateResponse{Status: "error-internal"}
	}
	var best *Payload
	for i := range ps {
		p := &ps[i]
		if CompareVersions(p.Version, a.Version) > 0 && (best == nil || CompareVersions(p.Version, best.Version) > 0) {
			best = p
		}
	}
	if best == nil {
		return &UpdateResponse{Status: StatusNoUpdate}
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return &UpdateResponse{
		Status: StatusOK,
		URLs:   &URLs{URLs: []URL{{CodeBase: fmt.Sprintf("%s://%s/payloads/%s/", scheme, r.Host, a.Track)}}},
		Manifest: &Manifest{
			Version:  best.Version,
			Packages: Packages{Packages: []Package{{Name: filepath.Base(best.Path), Size: best.Size, SHA256Hex: hex.EncodeToString(best.SHA256), Required: true}}},
			Actions:  Actions{Actions: []Action{{Event: "postinstall", SHA256: base64.StdEncoding.EncodeToString(best.SHA256), DisablePayloadBackoff: true}}},
		},
	}
}

func (s *Server) record(e Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, e)
	if s.EventLog != nil {
		b, _ := json.Marshal(e)
		s.EventLog.Write(append(b, '\n'))
	}
}

func (s *Server) servePayload(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/payloads/"), "/")
	if len(parts) != 2 || !validChannel(parts[0]) {
		http.NotFound(w, r)
		return
	}
	ps, err := s.Catalog(parts[0])
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	for _, p := range ps {
		if filepath.Base(p.Path) == parts[1] {
			http.ServeFile(w, r, p.Path)
			return
		}
	}
	http.NotFound(w, r)
}

func validChannel(c string) bool {
	if c == "" || c == "." || c == ".." || len(c) > 64 {
		return false
	}
	return !strings.ContainsAny(c, `/\`)
}

// CompareVersions orders dotted versions field by field, numerically where
// both fields are numbers ("1.10.0" > "1.9.3"), as strings otherwise.
func CompareVersions(a, b string) int {
	as, bs := strings.FieldsFunc(a, isSep), strings.FieldsFunc(b, isSep)
	for i := 0; i < len(as) || i < len(bs); i++ {
		if i >= len(as) {
			return -1
		}
		if i >= len(bs) {
			return 1
		}
		an, aerr := strconv.ParseUint(as[i], 10, 64)
		bn, berr := strconv.ParseUint(bs[i], 10, 64)
		switch {
		case aerr == nil && berr == nil && an != bn:
			if an < bn {
				return -1
			}
			return 1
		case (aerr != nil || berr != nil) && as[i] != bs[i]:
			return strings.Compare(as[i], bs[i])
		}
	}
	return 0
}

func isSep(r rune) bool { return r == '.' || r == '-' || r == '+' || r == '_' }

// DirCatalog is a Catalog over a directory with a subdirectory per channel
// holding payload files (*.payload); each file's version is read by peek,
// which returns the version of the payload at a path.
func DirCatalog(dir string, peek func(path string) (string, error)) Catalog {
	return func(channel string) ([]Payload, error) {
		matches, err := filepath.Glob(filepath.Join(dir, channel, "*.payload"))
		if err != nil {
			return nil, err
		}
		var ps []Payload
		for _, m := range matches {
			v, err := peek(m)
			if err != nil {
				return nil, fmt.Errorf("payload %s: %w", m, err)
			}
			size, sum, err := sha256File(m)
			if err != nil {
				return nil, err
			}
			ps = append(ps, Payload{Version: v, Path: m, Size: size, SHA256: sum})
		}
		return ps, nil
	}
}

// sha256File hashes a payload; a checksum file beside it (NAME.sha256,
// written by the payload builder) spares rehashing gigabytes per check.
func sha256File(path string) (int64, []byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, nil, err
	}
	if b, err := os.ReadFile(path + ".sha256"); err == nil {
		f := strings.Fields(string(b))
		if len(f) > 0 {
			if sum, err := hex.DecodeString(f[0]); err == nil && len(sum) == 32 {
				return fi.Size(), sum, nil
			}
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return 0, nil, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return 0, nil, fmt.Errorf("hash %s: %w", path, err)
	}
	return n, h.Sum(nil), nil
}
