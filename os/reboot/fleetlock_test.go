package reboot

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
)

// Requests refused before any semaphore is touched; the calls that reach
// etcd are tested against a real one in functional-tests/reboot_test.go.
func TestFleetLockRefusesBadRequests(t *testing.T) {
	h := &FleetLockHandler{Locker: func(string) Locker {
		t.Fatal("a bad request reached the semaphore")
		return nil
	}}
	for _, c := range []struct {
		name, method, path, body string
		header                   bool
		code                     int
		kind                     string
	}{
		{"no header", "POST", "/v1/pre-reboot", `{"client_params":{"id":"a"}}`, false, 400, "missing_header"},
		{"GET", "GET", "/v1/pre-reboot", ``, true, 405, "bad_method"},
		{"unknown path", "POST", "/v1/reboot-now", `{}`, true, 404, "not_found"},
		{"not json", "POST", "/v1/steady-state", `{"client_params":`, true, 400, "bad_body"},
		{"no id", "POST", "/v1/pre-reboot", `{"client_params":{"group":"g"}}`, true, 400, "bad_body"},
		{"bad group", "POST", "/v1/pre-reboot", `{"client_params":{"id":"a","group":"../x"}}`, true, 400, "bad_group"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest(c.method, c.path, strings.NewReader(c.body))
			if c.header {
				r.Header.Set(FleetLockHeader, "true")
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			var e FleetLockError
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil {
				t.Fatalf("body %q: %v", w.Body, err)
			}
			if w.Code != c.code || e.Kind != c.kind || e.Value == "" {
				t.Errorf("%d %+v, want %d %s with a message", w.Code, e, c.code, c.kind)
			}
		})
	}
}
