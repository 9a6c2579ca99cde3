package stage1

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/runc/libcontainer"

	"github.com/orbit-pods/orbit/pod"
)

// The apps of a sandbox pod can be attached to (the CRI's Attach) while
// they run, through one socket per pod, pod.Dir.AttachSocket (the framing
// is in pod/attach.go). A client gets the app's output from then on,
// besides the log; what it writes goes to the app's stdin when the app has
// one (pod.App.Stdin). A client's half-close ends its input, and with
// StdinOnce closes the app's stdin. Clients get EOF when the app's output
// ends.

// attachServer takes attach clients for the pod's apps.
type attachServer struct {
	l      *net.UnixListener
	mu     sync.Mutex
	points map[string]*attachPoint
}

// serveAttach starts listening on the pod's attach socket.
func (s *supervisor) serveAttach() error {
	path := s.dir.AttachSocket()
	_ = os.Remove(path)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return fmt.Errorf("attach socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return fmt.Errorf("attach socket: %w", err)
	}
	as := &attachServer{l: l, points: map[string]*attachPoint{}}
	s.attach = as
	go as.serve()
	return nil
}

// closeAttach stops taking clients.
func (s *supervisor) closeAttach() {
	if s.attach != nil {
		s.attach.l.Close()
		_ = os.Remove(s.dir.AttachSocket())
	}
}

func (as *attachServer) serve() {
	for {
		c, err := as.l.AcceptUnix()
		if err != nil {
			return
		}
		go as.handle(c)
	}
}

// handle reads which app a client attaches to and hands it over.
func (as *attachServer) handle(c *net.UnixConn) {
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReaderSize(c, 256)
	name, err := br.ReadString('\n')
	if err != nil {
		c.Close()
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	name, opt, _ := strings.Cut(strings.TrimSuffix(name, "\n"), " ")
	as.mu.Lock()
	ap := as.points[name]
	as.mu.Unlock()
	if ap == nil || !ap.add(c) {
		c.Close() // no such running app: EOF at once
		return
	}
	ap.input(c, br, opt == "stdin")
}

// attachPoint is one running app's clients and stdin.
type attachPoint struct {
	mu sync.Mutex
	// clients are the attached connections, each with the queue its own
	// writer sends from (a slow client never holds up the app's output);
	// nil once the app's output ended.
	clients map[*net.UnixConn]chan []byte
	stdin   *os.File // write end of the app's stdin; nil: none, or closed
	once    bool
	streams sync.WaitGroup
}

// openAttach makes a's attach point, with a stdin pipe for p when a wants
// one; the caller closes the returned read end once p has started.
func (s *supervisor) openAttach(a *pod.App, p *libcontainer.Process) (*attachPoint, *os.File, error) {
	ap := &attachPoint{clients: map[*net.UnixConn]chan []byte{}, once: a.StdinOnce}
	ap.streams.Add(2) // stdout and stderr: streamsEnded
	var r *os.File
	if a.Stdin {
		var w *os.File
		var err error
		if r, w, err = os.Pipe(); err != nil {
			return nil, nil, fmt.Errorf("stdin pipe: %w", err)
		}
		ap.stdin = w
		p.Stdin = r
	}
	s.attach.mu.Lock()
	s.attach.points[a.Name] = ap
	s.attach.mu.Unlock()
	go func() {
		// Once both streams end the app is gone: its clients get EOF.
		ap.streams.Wait()
		s.attach.mu.Lock()
		if s.attach.points[a.Name] == ap {
			delete(s.attach.points, a.Name)
		}
		s.attach.mu.Unlock()
		ap.close()
	}()
	return ap, r, nil
}

func (ap *attachPoint) add(c *net.UnixConn) bool {
	ap.mu.Lock()
	defer ap.mu.Unlock()
	if ap.clients == nil {
		return false
	}
	q := make(chan []byte, attachQueue)
	ap.clients[c] = q
	go writeFrames(c, q)
	return true
}

// attachQueue is how many frames (32 KiB at most each) a client may fall
// behind before it is dropped.
const attachQueue = 256

// writeFrames sends a client its queue until the queue is closed, then
// closes the connection: the client reads EOF after the last frame.
func writeFrames(c *net.UnixConn, q <-chan []byte) {
	defer c.Close()
	for f := range q {
		_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(f); err != nil {
			for range q { // until the client is dropped
			}
			return
		}
	}
}

// drop removes a client; the caller holds mu.
func (ap *attachPoint) drop(c *net.UnixConn) {
	if q, ok := ap.clients[c]; ok {
		delete(ap.clients, c)
		close(q)
	}
}

// input copies a client's input to the app's stdin, when the client
// attached its stdin, until the client ends it; a client that did not
// neither writes nor closes the app's stdin. When the client is gone it
// gets no more output.
func (ap *attachPoint) input(c *net.UnixConn, r io.Reader, stdin bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 && stdin {
			ap.mu.Lock()
			w := ap.stdin
			ap.mu.Unlock()
			if w != nil {
				_, _ = w.Write(buf[:n])
			}
		}
		if err != nil {
			break
		}
	}
	ap.mu.Lock()
	defer ap.mu.Unlock()
	if stdin && ap.once && ap.stdin != nil {
		ap.stdin.Close()
		ap.stdin = nil
	}
	if !stdin {
		// Its read side ended: the client hung up.
		ap.drop(c)
		c.Close()
	}
}

// streamsEnded says n of the app's two output streams ended.
func (ap *attachPoint) streamsEnded(n int) {
	for range n {
		ap.streams.Done()
	}
}

type attachStream struct {
	ap     *attachPoint
	stream byte
}

func (w attachStream) Write(b []byte) (int, error) {
	w.ap.send(w.stream, b)
	return len(b), nil
}

// send queues a frame for every client (a copy: b is the copier's
// buffer); a client whose queue is full is dropped rather than holding up
// the app's output.
func (ap *attachPoint) send(stream byte, b []byte) {
	hdr := pod.AttachFrameHeader(stream, len(b))
	frame := append(hdr[:], b...)
	ap.mu.Lock()
	defer ap.mu.Unlock()
	for c, q := range ap.clients {
		select {
		case q <- frame:
		default:
			ap.drop(c)
			c.Close()
		}
	}
}

// close drops the clients and the app's stdin.
func (ap *attachPoint) close() {
	ap.mu.Lock()
	defer ap.mu.Unlock()
	for c := range ap.clients {
		ap.drop(c) // its writer sends what is queued, then EOF
	}
	ap.clients = nil
	if ap.stdin != nil {
		ap.stdin.Close()
		ap.stdin = nil
	}
}
