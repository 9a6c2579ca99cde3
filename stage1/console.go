package stage1

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"time"

	"github.com/opencontainers/runc/libcontainer"
	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/orbit-pods/orbit/pod"
)

// An interactive pod's app reads stage1's stdin. When that stdin is a
// terminal, the app gets a pty of its own: libcontainer makes it inside the
// container and sends its master end back over a socket pair (the
// ConsoleSocket); stage1 puts its own terminal in raw mode, so keys such
// as ^C reach the app's line discipline untouched, copies between the two,
// passes on window size changes, and restores its terminal when the app is
// done.

// appStdio wires p's stdio for the pod: the supervisor's stdout and stderr,
// and in an interactive pod its stdin or a pty. started is called once p
// runs, and failed if it did not start.
func (s *supervisor) appStdio(a *pod.App, p *libcontainer.Process) (started func() error, failed func(), err error) {
	if !s.m.Interactive || !term.IsTerminal(int(os.Stdin.Fd())) {
		closeEnds, err := s.loggedStdio(a, p)
		if err != nil {
			return nil, nil, err
		}
		if s.m.Interactive {
			p.Stdin = os.Stdin
		}
		return func() error { closeEnds(); return nil }, closeEnds, nil
	}
	logw, err := s.ttyLog(a)
	if err != nil {
		return nil, nil, err
	}
	ours, err := withConsole(p)
	if err != nil {
		return nil, nil, err
	}
	started = func() error {
		r, err := receiveConsole(p, ours, logw)
		s.relay = r
		return err
	}
	failed = func() { p.ConsoleSocket.Close(); ours.Close() }
	return started, failed, nil
}

// withConsole asks libcontainer to give p a pty, and returns the socket
// its master end will come back on.
func withConsole(p *libcontainer.Process) (*os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("console socket: %w", err)
	}
	p.ConsoleSocket = os.NewFile(uintptr(fds[1]), "console-socket-app")
	return os.NewFile(uintptr(fds[0]), "console-socket"), nil
}

// receiveConsole takes the master end of a started p's pty and relays
// between it and stage1's terminal.
func receiveConsole(p *libcontainer.Process, ours *os.File, logw io.WriteCloser) (*relay, error) {
	p.ConsoleSocket.Close()
	defer ours.Close()
	master, err := recvFile(ours)
	if err != nil {
		return nil, fmt.Errorf("receive the app's terminal: %w", err)
	}
	r, err := startRelay(master, logw)
	if err != nil {
		master.Close()
		return nil, err
	}
	return r, nil
}

// recvFile receives one descriptor sent with SCM_RIGHTS, named by the
// message's payload.
func recvFile(sock *os.File) (*os.File, error) {
	name := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4))
	var n, oobn int
	var err error
	for {
		n, oobn, _, _, err = unix.Recvmsg(int(sock.Fd()), name, oob, 0)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return nil, err
	}
	if len(msgs) != 1 {
		return nil, fmt.Errorf("%d control messages, want 1", len(msgs))
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil {
		return nil, err
	}
	for _, fd := range fds[1:] {
		unix.Close(fd)
	}
	if len(fds) == 0 {
		return nil, errors.New("no descriptor received")
	}
	return os.NewFile(uintptr(fds[0]), string(name[:n])), nil
}

// relay copies between stage1's terminal and an app's pty master.
type relay struct {
	master  *os.File
	state   *term.State
	winch   chan os.Signal
	outDone chan struct{}
	once    sync.Once
}

func startRelay(master *os.File, logw io.WriteCloser) (*relay, error) {
	in := int(os.Stdin.Fd())
	r := &relay{master: master, winch: make(chan os.Signal, 1), outDone: make(chan struct{})}
	r.resize()
	st, err := term.MakeRaw(in)
	if err != nil {
		return nil, fmt.Errorf("raw mode on stage1's terminal: %w", err)
	}
	r.state = st
	signal.Notify(r.winch, unix.SIGWINCH)
	go func() {
		for range r.winch {
			r.resize()
		}
	}()
	// The stdin copy ends when stage1 does: a read of a terminal cannot
	// be interrupted portably, and nothing waits for it.
	go func() { _, _ = io.Copy(master, os.Stdin) }()
	go func() {
		// Ends with EIO once every holder of the pty's other end is gone.
		// The log gets the terminal's output too (errors writing it must
		// not stop the terminal: the log side is best effort).
		_, _ = io.Copy(io.MultiWriter(os.Stdout, bestEffort{logw}), master)
		_ = logw.Close()
		close(r.outDone)
	}()
	return r, nil
}

// bestEffort is a writer whose errors are dropped.
type bestEffort struct{ w io.Writer }

func (b bestEffort) Write(p []byte) (int, error) {
	_, _ = b.w.Write(p)
	return len(p), nil
}

// resize gives the app's pty stage1's terminal size.
func (r *relay) resize() {
	ws, err := unix.IoctlGetWinsize(int(os.Stdin.Fd()), unix.TIOCGWINSZ)
	if err != nil {
		return
	}
	_ = unix.IoctlSetWinsize(int(r.master.Fd()), unix.TIOCSWINSZ, ws)
}

// close waits for the app's last output (briefly: a process the app left
// behind may hold its pty open), then restores stage1's terminal.
func (r *relay) close() {
	r.once.Do(func() {
		select {
		case <-r.outDone:
		case <-time.After(2 * time.Second):
		}
		signal.Stop(r.winch)
		close(r.winch)
		_ = term.Restore(int(os.Stdin.Fd()), r.state)
		r.master.Close()
	})
}

// nopCloser is a writer with nothing to close: enter's terminal, which is
// not logged.
type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }
