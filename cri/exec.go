package cri

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-streaming/pkg/streaming"
	remotecommandserver "k8s.io/cri-streaming/pkg/streaming/remotecommand"

	"github.com/orbit-pods/orbit/pod"
	"github.com/orbit-pods/orbit/stage0"
)

// enterCommand is stage1's enter verb for cmd in a running container.
func (s *Server) enterCommand(ctx context.Context, c *container, cmd []string) (*exec.Cmd, error) {
	if len(cmd) == 0 {
		return nil, invalid("no command given")
	}
	if !c.sb.running || c.st.State != pod.AppRunning {
		return nil, status.Errorf(codes.FailedPrecondition, "container %s is not running", c.id())
	}
	m, err := pod.ReadManifest(c.sb.pd.Dir().ManifestFile())
	if err != nil {
		return nil, grpcError("read pod manifest", err)
	}
	args := append([]string{"enter", "--abi=" + strconv.Itoa(stage0.Stage1ABIVersion),
		"--pod-dir=" + string(c.sb.pd.Dir()), "--app=" + c.app, "--"}, cmd...)
	return exec.CommandContext(ctx, m.Stage1, args...), nil
}

// ExecSync runs a command in a container and returns its output and
// status; past the timeout it is killed and the call fails.
func (s *Server) ExecSync(ctx context.Context, req *runtimeapi.ExecSyncRequest) (*runtimeapi.ExecSyncResponse, error) {
	c, err := s.findContainer(req.ContainerId)
	if err != nil {
		return nil, err
	}
	if req.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(req.Timeout)*time.Second)
		defer cancel()
	}
	cmd, err := s.enterCommand(ctx, c, req.Cmd)
	if err != nil {
		return nil, err
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// stage1 enter kills the command in the container when it gets
	// SIGTERM; SIGKILL would leave the command running.
	cmd.Cancel = func() error { return cmd.Process.Signal(unix.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	err = cmd.Run()
	if ctx.Err() == context.DeadlineExceeded {
		return nil, status.Errorf(codes.DeadlineExceeded, "command %q timed out after %ds", strings.Join(req.Cmd, " "), req.Timeout)
	}
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		return nil, grpcError("exec in container "+c.id(), err)
	}
	return &runtimeapi.ExecSyncResponse{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), ExitCode: int32(code)}, nil
}

// Exec, Attach and PortForward hand out URLs of the streaming server.
func (s *Server) Exec(ctx context.Context, req *runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error) {
	if s.stream == nil {
		return nil, status.Error(codes.Unavailable, "no streaming server configured (--stream-address)")
	}
	c, err := s.findContainer(req.ContainerId)
	if err != nil {
		return nil, err
	}
	if c.st.State != pod.AppRunning {
		return nil, status.Errorf(codes.FailedPrecondition, "container %s is not running", c.id())
	}
	return s.stream.srv.GetExec(req)
}

// Attach hands out a URL where the container's output can be read.
func (s *Server) Attach(ctx context.Context, req *runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error) {
	if s.stream == nil {
		return nil, status.Error(codes.Unavailable, "no streaming server configured (--stream-address)")
	}
	if _, err := s.findContainer(req.ContainerId); err != nil {
		return nil, err
	}
	return s.stream.srv.GetAttach(req)
}

// PortForward hands out a URL that forwards to the pod's ports.
func (s *Server) PortForward(ctx context.Context, req *runtimeapi.PortForwardRequest) (*runtimeapi.PortForwardResponse, error) {
	if s.stream == nil {
		return nil, status.Error(codes.Unavailable, "no streaming server configured (--stream-address)")
	}
	sb, err := s.findSandbox(req.PodSandboxId)
	if err != nil {
		return nil, err
	}
	if !sb.running {
		return nil, status.Errorf(codes.FailedPrecondition, "pod sandbox %s is not ready", sb.pd.UUID)
	}
	return s.stream.srv.GetPortForward(req)
}

type streamServer struct {
	srv  streaming.Server
	addr string
}

func newStreamServer(s *Server, addr string) (*streamServer, error) {
	cfg := streaming.DefaultConfig
	cfg.Addr = addr
	// A fixed base URL: with port 0 the library would build URLs before
	// the port is known.
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("streaming server: %w", err)
	}
	cfg.Addr = l.Addr().String()
	l.Close()
	cfg.BaseURL = &url.URL{Scheme: "http", Host: cfg.Addr}
	srv, err := streaming.NewServer(cfg, streamRuntime{s})
	if err != nil {
		return nil, fmt.Errorf("streaming server: %w", err)
	}
	return &streamServer{srv: srv, addr: cfg.Addr}, nil
}

func (ss *streamServer) serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- ss.srv.Start(true) }()
	select {
	case <-ctx.Done():
		_ = ss.srv.Stop()
		return nil
	case err := <-errc:
		return err
	}
}

// streamRuntime does what the streaming server's URLs ask for.
type streamRuntime struct{ s *Server }

func (r streamRuntime) Exec(ctx context.Context, id string, cmd []string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommandserver.TerminalSize) error {
	c, err := r.s.findContainer(id)
	if err != nil {
		return err
	}
	ec, err := r.s.enterCommand(ctx, c, cmd)
	if err != nil {
		return err
	}
	if !tty {
		ec.Stdin, ec.Stdout, ec.Stderr = in, out, errw
		if in == nil {
			ec.Stdin = nil
		}
		if errw == nil {
			ec.Stderr = out
		}
		return exitError(ec.Run())
	}
	// stage1 enter gives the command a pty of its own when its stdin is a
	// terminal: it gets one here, relayed to the stream.
	master, slave, err := openPTY()
	if err != nil {
		return err
	}
	defer master.Close()
	ec.Stdin, ec.Stdout, ec.Stderr = slave, slave, slave
	ec.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := ec.Start(); err != nil {
		slave.Close()
		return err
	}
	slave.Close()
	go func() {
		for sz := range resize {
			_ = unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: sz.Height, Col: sz.Width})
		}
	}()
	if in != nil {
		go func() { _, _ = io.Copy(master, in) }()
	}
	done := make(chan struct{})
	go func() { _, _ = io.Copy(out, master); close(done) }()
	err = ec.Wait()
	select {
	case <-done:
	case <-time.After(time.Second):
	}
	return exitError(err)
}

// exitError turns a command's exit into what the streaming server reports
// as an exit code.
func exitError(err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return &exitCodeError{code: ee.ExitCode()}
	}
	return err
}

// exitCodeError satisfies k8s.io/utils/exec.ExitError, which the
// streaming server reads the command's status from.
type exitCodeError struct{ code int }

func (e *exitCodeError) Error() string   { return fmt.Sprintf("command exited with status %d", e.code) }
func (e *exitCodeError) String() string  { return e.Error() }
func (e *exitCodeError) Exited() bool    { return true }
func (e *exitCodeError) ExitStatus() int { return e.code }

// Attach connects to a running container's stdio through its pod's
// attach socket: its output from now on, and its stdin when it was created
// with one.
func (r streamRuntime) Attach(ctx context.Context, id string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommandserver.TerminalSize) error {
	c, err := r.s.findContainer(id)
	if err != nil {
		return err
	}
	if tty {
		return status.Errorf(codes.FailedPrecondition, "attach to container %s: orbit apps of a pod sandbox have no terminal", id)
	}
	if c.st == nil || c.st.State != pod.AppRunning {
		return status.Errorf(codes.FailedPrecondition, "attach to container %s: it is not running", id)
	}
	var stderr io.Writer
	if errw != nil {
		stderr = errw
	}
	if err := pod.Attach(ctx, c.sb.pd.Dir(), c.app, in, out, stderr); err != nil {
		return fmt.Errorf("attach to container %s: %w", id, err)
	}
	return nil
}

// PortForward connects stream to port on the pod's loopback, from inside
// the pod's network namespace.
func (r streamRuntime) PortForward(ctx context.Context, id string, port int32, stream io.ReadWriteCloser) error {
	defer stream.Close()
	sb, err := r.s.findSandbox(id)
	if err != nil {
		return err
	}
	b, err := os.ReadFile(sb.pd.Dir().PIDFile())
	if err != nil {
		return fmt.Errorf("pod sandbox %s: %w", id, err)
	}
	conn, err := dialInNetNS("/proc/"+strings.TrimSpace(string(b))+"/ns/net", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return fmt.Errorf("port forward to %s port %d: %w", id, port, err)
	}
	defer conn.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(conn, stream); done <- struct{}{} }()
	go func() { _, _ = io.Copy(stream, conn); done <- struct{}{} }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	return nil
}

// dialInNetNS connects to addr from the network namespace at nsPath: the
// socket is made on a thread moved into the namespace, and keeps it.
func dialInNetNS(nsPath, addr string) (net.Conn, error) {
	ns, err := os.Open(nsPath)
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// The thread is never unlocked: if moving back failed it must
		// not run other goroutines, and exits with this one.
		runtime.LockOSThread()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{err: fmt.Errorf("enter the pod's network namespace: %w", err)}
			return
		}
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

// openPTY opens a new pseudo-terminal pair.
func openPTY() (master, slave *os.File, err error) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, err
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("unlock pty: %w", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("pty number: %w", err)
	}
	sl, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		return nil, nil, err
	}
	return m, sl, nil
}
