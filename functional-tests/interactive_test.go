//go:build functional

package functional

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestInteractivePassesStdinFromAPipe(t *testing.T) {
	e := newEnv(t)
	e.fetchDemo()
	for _, flavor := range []string{"default", "fly"} {
		c := e.cmd("run", "--interactive", "--stage1-name="+flavor, "demo", "--exec=/bin/cat")
		c.Stdin = strings.NewReader("hi\n")
		out, err := c.Output()
		if err != nil || string(out) != "hi\n" {
			t.Errorf("%s: output %q, %v", flavor, out, err)
		}
	}
	if r := e.orbit("run", "--interactive", "demo", "--name=a", "---", "demo", "--name=b"); r.code == 0 || !strings.Contains(r.stderr, "an interactive pod runs one app") {
		t.Errorf("two interactive apps: exit %d, stderr %q", r.code, r.stderr)
	}
}

// openPty returns a new pty's master and its other end's path.
func openPty(t *testing.T) (*os.File, string) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	return m, fmt.Sprintf("/dev/pts/%d", n)
}

// syncBuffer collects what a goroutine reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// onPty runs c with a new pty (33 rows, 77 columns) as its controlling
// terminal and stdio, types input once its output has the line ready, and
// returns its exit status and output once all of it has come. It checks
// that c leaves the terminal's modes as it found them.
func (e *env) onPty(c *exec.Cmd, ready, input, last string) (int, string) {
	return e.onPtyDo(c, ready, func(master, _ *os.File) {
		if _, err := master.Write([]byte(input)); err != nil {
			e.t.Fatal(err)
		}
	}, last)
}

// onPtyDo is onPty with an action of its own once c is ready.
func (e *env) onPtyDo(c *exec.Cmd, ready string, act func(master, slave *os.File), last string) (int, string) {
	t := e.t
	t.Helper()
	master, slavePath := openPty(t)
	slave, err := os.OpenFile(slavePath, os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer slave.Close()
	if err := unix.IoctlSetWinsize(int(slave.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 33, Col: 77}); err != nil {
		t.Fatal(err)
	}
	before, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	var out syncBuffer
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			_, _ = out.Write(buf[:n])
			if err != nil {
				return
			}
		}
	}()
	c.Stdin, c.Stdout, c.Stderr = slave, slave, slave
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	e.started = append(e.started, c)
	waitFor(t, "the first lines", 15*time.Second, func() bool { return strings.Contains(out.String(), ready) })
	act(master, slave)
	_ = c.Wait()
	waitFor(t, "the last line", 15*time.Second, func() bool { return strings.Contains(out.String(), last) })
	after, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if after.Lflag != before.Lflag || after.Iflag != before.Iflag || after.Oflag != before.Oflag {
		t.Errorf("terminal modes not restored: %+v, were %+v", after, before)
	}
	return c.ProcessState.ExitCode(), strings.ReplaceAll(out.String(), "\r", "")
}

const ptyScript = `echo "tty=$(tty)"; echo "size=$(stty size)"; read line; echo "got=$line"; exit 6`

func TestInteractiveOnATerminalGivesTheAppAPty(t *testing.T) {
	e := newEnv(t)
	e.fetchDemo()
	for _, flavor := range []string{"default", "fly"} {
		t.Run(flavor, func(t *testing.T) {
			code, out := e.onPty(e.cmd("run", "--interactive", "--stage1-name="+flavor, "demo", "--exec=/bin/sh", "--", "-c", ptyScript),
				"size=", "typed text\r", "got=")
			got := lines(out)
			if code != 6 || !strings.HasPrefix(got["tty"], "/dev/pts/") || got["size"] != "33 77" || got["got"] != "typed text" {
				t.Errorf("exit %d, output %q", code, out)
			}
		})
	}
}

func TestEnterOnATerminalGivesTheCommandAPty(t *testing.T) {
	e := newEnv(t)
	e.fetchDemo()
	uuid, wait := e.startPod("demo", "--exec=/bin/sleep", "--", "3600")
	code, out := e.onPty(e.cmd("enter", uuid, "/bin/sh", "-c", ptyScript), "size=", "typed text\r", "got=")
	got := lines(out)
	if code != 6 || !strings.HasPrefix(got["tty"], "/dev/pts/") || got["size"] != "33 77" || got["got"] != "typed text" {
		t.Errorf("exit %d, output %q", code, out)
	}
	e.mustOrbit("stop", uuid)
	wait()
}

// Resizing orbit's terminal (the kernel sends SIGWINCH) resizes the app's.
func TestInteractiveAppFollowsTerminalResize(t *testing.T) {
	e := newEnv(t)
	e.fetchDemo()
	code, out := e.onPtyDo(e.cmd("run", "--interactive", "demo", "--exec=/bin/sh", "--", "-c",
		`echo "size=$(stty size)"; while [ "$(stty size)" != "40 100" ]; do sleep 0.05; done; echo resized`),
		"size=", func(_, slave *os.File) {
			if err := unix.IoctlSetWinsize(int(slave.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 40, Col: 100}); err != nil {
				t.Fatal(err)
			}
		}, "resized")
	if code != 0 || !strings.Contains(out, "size=33 77") {
		t.Fatalf("exit %d, output %q", code, out)
	}
}
