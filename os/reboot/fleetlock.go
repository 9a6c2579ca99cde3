package reboot

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"regexp"
)

// The FleetLock protocol (the one Zincati speaks): a client POSTs to
// /v1/pre-reboot before rebooting and to /v1/steady-state once it is up,
// with the header fleet-lock-protocol: true and a JSON body naming the
// machine and its group. 200 means done; any other status carries a JSON
// error with a kind and a message.
const (
	FleetLockPreReboot   = "/v1/pre-reboot"
	FleetLockSteadyState = "/v1/steady-state"
	FleetLockHeader      = "fleet-lock-protocol"
)

// FleetLockRequest is the body of both calls.
type FleetLockRequest struct {
	ClientParams struct {
		ID    string `json:"id"`
		Group string `json:"group"`
	} `json:"client_params"`
}

// FleetLockError is the body of a refused call.
type FleetLockError struct {
	Kind  string `json:"kind"`
	Value string `json:"value"`
}

var groupName = regexp.MustCompile(`^[a-zA-Z0-9.-]+$`)

// FleetLockHandler serves the FleetLock protocol over the same semaphores
// the reboot manager uses: group "default" is Container Linux's default
// key, any other group its groups/<group> key.
type FleetLockHandler struct {
	// Locker gives the semaphore of a group.
	Locker func(group string) Locker
	Log    *log.Logger
}

func (h *FleetLockHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	lock := r.URL.Path == FleetLockPreReboot
	if !lock && r.URL.Path != FleetLockSteadyState {
		h.fail(w, http.StatusNotFound, "not_found", fmt.Sprintf("no FleetLock call at %s", r.URL.Path))
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.fail(w, http.StatusMethodNotAllowed, "bad_method", "FleetLock calls are POST")
		return
	}
	if r.Header.Get(FleetLockHeader) != "true" {
		h.fail(w, http.StatusBadRequest, "missing_header", "the header fleet-lock-protocol: true is required")
		return
	}
	var req FleetLockRequest
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err == nil {
		err = json.Unmarshal(body, &req)
	}
	if err != nil {
		h.fail(w, http.StatusBadRequest, "bad_body", fmt.Sprintf("request body: %v", err))
		return
	}
	id, group := req.ClientParams.ID, req.ClientParams.Group
	if id == "" {
		h.fail(w, http.StatusBadRequest, "bad_body", "client_params.id is empty")
		return
	}
	if group == "" {
		group = "default"
	}
	if !groupName.MatchString(group) {
		h.fail(w, http.StatusBadRequest, "bad_group", fmt.Sprintf("group %q: want letters, digits, dots and dashes", group))
		return
	}
	l := h.Locker(group)
	if lock {
		err = l.Lock(r.Context(), id)
	} else {
		err = l.Unlock(r.Context(), id)
	}
	switch {
	case errors.Is(err, ErrNoSlots):
		h.fail(w, http.StatusConflict, "failed_lock", err.Error())
	case err != nil && lock:
		h.fail(w, http.StatusInternalServerError, "failed_lock", err.Error())
	case err != nil:
		h.fail(w, http.StatusInternalServerError, "failed_unlock", err.Error())
	default:
		if h.Log != nil {
			h.Log.Printf("fleetlock %s: %s in group %s", r.URL.Path, id, group)
		}
		w.WriteHeader(http.StatusOK)
	}
}

func (h *FleetLockHandler) fail(w http.ResponseWriter, code int, kind, msg string) {
	if h.Log != nil {
		h.Log.Printf("fleetlock: %d %s: %s", code, kind, msg)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(FleetLockError{Kind: kind, Value: msg})
}
