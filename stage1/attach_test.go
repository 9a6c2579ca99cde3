package stage1

import (
	"net"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/orbit-pods/orbit/pod"
)

// unixPair is a connected pair of unix stream sockets.
func unixPair(t *testing.T) (*net.UnixConn, *net.UnixConn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	var conns [2]*net.UnixConn
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "pair")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c.(*net.UnixConn)
	}
	return conns[0], conns[1]
}

// attached is an attach point with one client, c, whose other end is
// peer.
func attached(t *testing.T) (ap *attachPoint, c, peer *net.UnixConn) {
	t.Helper()
	ap = &attachPoint{clients: map[*net.UnixConn]chan []byte{}}
	c, peer = unixPair(t)
	t.Cleanup(func() { peer.Close() })
	if !ap.add(c) {
		t.Fatal("add refused")
	}
	return ap, c, peer
}

// A client that does not read is dropped once its queue is full, and the
// app's output goes on.
func TestAttachDropsAClientThatDoesNotRead(t *testing.T) {
	ap, stuck, _ := attached(t)
	chunk := make([]byte, 32<<10)
	// The queue, plus what the socket's buffer holds, plus some.
	for range 2 * attachQueue {
		attachStream{ap, pod.AttachStdout}.Write(chunk)
	}
	ap.mu.Lock()
	_, still := ap.clients[stuck]
	ap.mu.Unlock()
	if still {
		t.Error("a client that reads nothing is still attached")
	}
	ap.close()
}

// A client gets the frames queued for it, in order, and EOF when the
// app's output ends.
func TestAttachClientGetsEverythingThenEOF(t *testing.T) {
	ap, c, peer := attached(t)
	var want []byte
	for i := range attachQueue / 2 {
		b := []byte{byte('a' + i%26), '\n'}
		want = append(want, b...)
		attachStream{ap, pod.AttachStdout}.Write(b)
	}
	attachStream{ap, pod.AttachStderr}.Write([]byte("err\n"))
	ap.close()
	var out, errb []byte
	wo := writerFunc(func(p []byte) (int, error) { out = append(out, p...); return len(p), nil })
	we := writerFunc(func(p []byte) (int, error) { errb = append(errb, p...); return len(p), nil })
	if err := pod.ReadAttachFrames(peer, wo, we); err != nil {
		t.Fatal(err)
	}
	if string(out) != string(want) || string(errb) != "err\n" {
		t.Errorf("stdout %d bytes (want %d), stderr %q", len(out), len(want), errb)
	}
	if ap.add(c) {
		t.Error("a client was added after the output ended")
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
