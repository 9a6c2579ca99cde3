package stage1

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/coreos/go-systemd/v22/daemon"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/orbit-pods/orbit/pod"
)

// The notify relay. systemd only believes notifications from a unit's main
// PID (NotifyAccess=main), and its socket is not in the pod's mount
// namespace, so stage1 listens on a datagram socket of the pod's own,
// bind-mounted into every app, and sends what arrives to systemd from
// itself. MAINPID= is rewritten to the supervisor, the unit's main PID
// whatever an app thinks its PID is; descriptors (FDSTORE=1, BARRIER=1)
// are not passed on.

// notifyDirInApp holds the socket inside an app.
const (
	notifyDirInApp    = "/run/orbit-notify"
	notifySocketInApp = notifyDirInApp + "/notify.sock"
)

type notifyRelay struct {
	dir  string
	conn *net.UnixConn
	done chan struct{}
}

// startNotifyRelay listens on the pod's socket when systemd gave stage1 a
// NOTIFY_SOCKET; it returns nil otherwise.
func startNotifyRelay(dir pod.Dir, logf func(string, ...any)) (*notifyRelay, error) {
	if os.Getenv("NOTIFY_SOCKET") == "" {
		return nil, nil
	}
	d := filepath.Join(dir.Stage1Dir(), "notify")
	if err := os.MkdirAll(d, 0o755); err != nil {
		return nil, fmt.Errorf("notify socket: %w", err)
	}
	sock := filepath.Join(d, "notify.sock")
	_ = os.Remove(sock)
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("notify socket: %w", err)
	}
	// Apps may run as any user.
	if err := os.Chmod(sock, 0o666); err != nil {
		conn.Close()
		return nil, fmt.Errorf("notify socket: %w", err)
	}
	r := &notifyRelay{dir: d, conn: conn, done: make(chan struct{})}
	logf("relaying notifications from %s to %s", sock, os.Getenv("NOTIFY_SOCKET"))
	go r.serve(logf)
	return r, nil
}

func (r *notifyRelay) serve(logf func(string, ...any)) {
	defer close(r.done)
	// systemd reads at most a pipe buffer's worth per message.
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(253*4))
	for {
		n, oobn, _, _, err := r.conn.ReadMsgUnix(buf, oob)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			logf("notify relay: %v", err)
			continue
		}
		closeRights(oob[:oobn])
		msg := rewriteNotify(string(buf[:n]), os.Getpid())
		if msg == "" {
			continue
		}
		if _, err := daemon.SdNotify(false, msg); err != nil {
			fmt.Fprintf(os.Stderr, "stage1: pass notification on to systemd: %v\n", err)
		}
	}
}

// rewriteNotify is the message systemd gets for one an app sent.
func rewriteNotify(msg string, supervisor int) string {
	var out []string
	for _, l := range strings.Split(msg, "\n") {
		switch {
		case l == "":
		case strings.HasPrefix(l, "MAINPID="):
			out = append(out, "MAINPID="+strconv.Itoa(supervisor))
		case strings.HasPrefix(l, "FDSTORE"), strings.HasPrefix(l, "FDNAME="), strings.HasPrefix(l, "FDPOLL="), l == "BARRIER=1":
			// They come with descriptors, which are not passed on.
		default:
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// closeRights closes descriptors that came with a message.
func closeRights(oob []byte) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return
	}
	for _, m := range msgs {
		if fds, err := unix.ParseUnixRights(&m); err == nil {
			for _, fd := range fds {
				unix.Close(fd)
			}
		}
	}
}

// mount is the bind mount that puts the socket in an app.
func (r *notifyRelay) mount() specs.Mount {
	return specs.Mount{
		Destination: notifyDirInApp,
		Type:        "bind",
		Source:      r.dir,
		Options:     []string{"bind", "nosuid", "nodev", "noexec"},
	}
}

func (r *notifyRelay) close() {
	r.conn.Close()
	<-r.done
}
