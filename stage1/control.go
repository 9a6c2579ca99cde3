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
			c, err := l.AcceptUnix()
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

func (s *supervisor) handleControl(c *net.UnixConn) {
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var resp pod.ControlResponse
	req, files, err := pod.ReadControlRequest(c)
	if err != nil {
		resp.Error = fmt.Sprintf("bad request: %v", err)
	} else if err := s.control1(req, files); err != nil {
		resp.Error = err.Error()
	}
	for _, f := range files {
		f.Close()
	}
	_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_ = json.NewEncoder(c).Encode(&resp)
}

func (s *supervisor) control1(req *pod.ControlRequest, files []*os.File) error {
	s.ctlMu.Lock()
	defer s.ctlMu.Unlock()
	s.logf("control: %s %s", req.Op, req.Name)
	if req.Op != pod.OpAdd && len(files) > 0 {
		return fmt.Errorf("%s: volume trees come only with add", req.Op)
	}
	switch req.Op {
	case pod.OpAdd:
		if req.App == nil {
			return errors.New("add: no app given")
		}
		trees := map[string]*os.File{}
		for i, name := range req.VolumeTrees {
			trees[name] = files[i]
		}
		return s.addApp(req.App, req.Volumes, trees)
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
