package pod

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// A sandbox pod (Manifest.Sandbox) stays up with any number of apps, zero
// included, and its supervisor takes app commands on a unix socket in the
// pod directory (docs/stage1-abi.md, "Apps of a running pod"): one JSON
// request per connection, one JSON response back.

// Control operations.
const (
	OpAdd    = "add"    // add App, created but not started
	OpStart  = "start"  // start the created app Name
	OpStop   = "stop"   // stop app Name: SIGTERM, SIGKILL after Timeout
	OpRemove = "rm"     // remove app Name, stopping it first
	OpUpdate = "update" // set app Name's cgroup limits to Resources
	OpReopen = "reopen" // reopen app Name's log file (after it was moved away)
)

// ControlRequest is one app command.
type ControlRequest struct {
	Op  string `json:"op"`
	App *App   `json:"app,omitempty"`
	// Volumes are added to the pod's with App, for App's mounts.
	Volumes []Volume `json:"volumes,omitempty"`
	// VolumeTrees names the Volumes whose source comes with the request
	// as a mount tree cloned in the sender's mount namespace
	// (open_tree(2)), one file descriptor each, in this order: the app
	// then sees the host as it is now, not as it was when the pod started.
	VolumeTrees []string `json:"volumeTrees,omitempty"`
	Name        string   `json:"name,omitempty"`
	// Timeout is the grace period of a stop, after SIGTERM.
	Timeout   Duration              `json:"timeout,omitempty"`
	Resources *LinuxResourcesUpdate `json:"resources,omitempty"`
}

// LinuxResourcesUpdate are the limits an update sets.
type LinuxResourcesUpdate struct {
	MemoryLimit int64  `json:"memoryLimit,omitempty"`
	CPUShares   uint64 `json:"cpuShares,omitempty"`
	CPUQuota    int64  `json:"cpuQuota,omitempty"`
	CPUPeriod   uint64 `json:"cpuPeriod,omitempty"`
}

// ControlResponse is the answer: Error is empty on success.
type ControlResponse struct {
	Error string `json:"error,omitempty"`
}

// App states in AppStatus.
const (
	AppCreated = "created"
	AppRunning = "running"
	AppExited  = "exited"
)

// AppStatus is what stage1 records of an app of a sandbox pod, in
// AppStatusFile, at each change.
type AppStatus struct {
	Name     string    `json:"name"`
	State    string    `json:"state"`
	Created  time.Time `json:"created"`
	Started  time.Time `json:"started,omitzero"`
	Finished time.Time `json:"finished,omitzero"`
	ExitCode int       `json:"exitCode"`
	// PID is the app's process on the host while it runs.
	PID       int    `json:"pid,omitempty"`
	OOMKilled bool   `json:"oomKilled,omitempty"`
	Reason    string `json:"reason,omitempty"`
}

// ControlSocket is where a sandbox pod's supervisor listens.
func (d Dir) ControlSocket() string { return filepath.Join(d.Stage1Dir(), "control.sock") }

// AppStatusFile is an app's AppStatus.
func (d Dir) AppStatusFile(app string) string {
	return filepath.Join(string(d), "appstatus", app+".json")
}

// ReadAppStatus reads an app's recorded status.
func ReadAppStatus(d Dir, app string) (*AppStatus, error) {
	b, err := os.ReadFile(d.AppStatusFile(app))
	if err != nil {
		return nil, err
	}
	var st AppStatus
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("app %s status: %w", app, err)
	}
	return &st, nil
}

// WriteAppStatus records st, replacing the file whole.
func WriteAppStatus(d Dir, st *AppStatus) error {
	f := d.AppStatusFile(st.Name)
	if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
		return err
	}
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	tmp := f + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, f)
}

// ErrNoControl is returned when a pod takes no app commands: it is not a
// sandbox pod or its supervisor is gone.
var ErrNoControl = errors.New("the pod takes no app commands (not a running sandbox pod)")

// Control sends req to the supervisor of the pod in d and waits for its
// answer. files go with the request (ControlRequest.VolumeTrees).
func Control(ctx context.Context, d Dir, req *ControlRequest, files ...*os.File) error {
	if len(files) != len(req.VolumeTrees) {
		return fmt.Errorf("send %s: %d files for %d volume trees", req.Op, len(files), len(req.VolumeTrees))
	}
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "unix", d.ControlSocket())
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNoControl, err)
	}
	c := conn.(*net.UnixConn)
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Now()) })
	defer stop()
	b, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("send %s: %w", req.Op, err)
	}
	// The descriptors ride on the request's first byte, which the
	// supervisor reads alone (ReadControlRequest).
	var fds []int
	for _, f := range files {
		fds = append(fds, int(f.Fd()))
	}
	if _, _, err := c.WriteMsgUnix(b[:1], unix.UnixRights(fds...), nil); err != nil {
		return fmt.Errorf("send %s: %w", req.Op, err)
	}
	if _, err := c.Write(b[1:]); err != nil {
		return fmt.Errorf("send %s: %w", req.Op, err)
	}
	var resp ControlResponse
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		return fmt.Errorf("answer to %s: %w", req.Op, err)
	}
	if resp.Error != "" {
		return errors.New(resp.Error)
	}
	return nil
}

// ReadControlRequest reads one request from c with the files that came
// with it; the caller closes them.
func ReadControlRequest(c *net.UnixConn) (*ControlRequest, []*os.File, error) {
	first := make([]byte, 1)
	oob := make([]byte, unix.CmsgSpace(4*maxControlFiles))
	n, oobn, flags, _, err := c.ReadMsgUnix(first, oob)
	if err != nil {
		return nil, nil, err
	}
	var files []*os.File
	if oobn > 0 {
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			return nil, nil, fmt.Errorf("control message: %w", err)
		}
		for _, m := range msgs {
			fds, err := unix.ParseUnixRights(&m)
			if err != nil {
				continue
			}
			for _, fd := range fds {
				files = append(files, os.NewFile(uintptr(fd), "volume-tree"))
			}
		}
	}
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
	}
	if flags&unix.MSG_CTRUNC != 0 {
		closeAll()
		return nil, nil, fmt.Errorf("more than %d files sent with one request", maxControlFiles)
	}
	var req ControlRequest
	if err := json.NewDecoder(io.MultiReader(bytes.NewReader(first[:n]), c)).Decode(&req); err != nil {
		closeAll()
		return nil, nil, err
	}
	if len(files) != len(req.VolumeTrees) {
		closeAll()
		return nil, nil, fmt.Errorf("%d files came for %d volume trees", len(files), len(req.VolumeTrees))
	}
	return &req, files, nil
}

// maxControlFiles bounds the files one request carries (an app's volumes).
const maxControlFiles = 128
