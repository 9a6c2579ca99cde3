package stage1

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/orbit-pods/orbit/pod"
)

// The control socket of a sandbox pod (pod/control.go): one request per
// connection, handled one at a time, so that app commands never race each
// other or the pod's stop.

// serveControl starts listening on the pod's control socket.
func (s *supervisor) serveControl() error {
	s.sandboxApps = map[string]*sandboxApp{}
	path := s.dir.ControlSocket()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	_ = os.Remove(path) // a stale one from a dead supervisor
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return fmt.Errorf("control socket: %w", err)
	}
	s.control = l
	s.controlDone = make(chan struct{})
	go func() {
		defer close(s.controlDone)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s.handleControl(c)
		}
	}()
	return nil
}

// closeControl stops taking commands and waits for the one under way.
func (s *supervisor) closeControl() {
	if s.control == nil {
		return
	}
	s.control.Close()
	<-s.controlDone
	s.control = nil
	_ = os.Remove(s.dir.ControlSocket())
}

func (s *supervisor) handleControl(c net.Conn) {
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var req pod.ControlRequest
	var resp pod.ControlResponse
	if err := json.NewDecoder(c).Decode(&req); err != nil {
		resp.Error = fmt.Sprintf("bad request: %v", err)
	} else if err := s.control1(&req); err != nil {
		resp.Error = err.Error()
	}
	_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_ = json.NewEncoder(c).Encode(&resp)
}

func (s *supervisor) control1(req *pod.ControlRequest) error {
	s.ctlMu.Lock()
	defer s.ctlMu.Unlock()
	s.logf("control: %s %s", req.Op, req.Name)
	switch req.Op {
	case pod.OpAdd:
		if req.App == nil {
			return errors.New("add: no app given")
		}
		return s.addApp(req.App, req.Volumes)
	case pod.OpStart:
		return s.startAddedApp(req.Name)
	case pod.OpStop:
		return s.stopApp(req.Name, time.Duration(req.Timeout))
	case pod.OpRemove:
		return s.removeApp(req.Name)
	case pod.OpUpdate:
		return s.updateApp(req.Name, req.Resources)
	case pod.OpReopen:
		return s.reopenLog(req.Name)
	}
	return fmt.Errorf("unknown operation %q (add, start, stop, rm, update, reopen)", req.Op)
}
