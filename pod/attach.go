package pod

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"path/filepath"
)

// Attaching to an app of a sandbox pod (docs/stage1-abi.md): a client
// connects to AttachSocket and writes the app's name, " stdin" when it
// attaches its input, and a newline; from then on what it writes is the
// app's stdin (its half-close ends it), and it reads the app's output as
// frames: a byte naming the stream (AttachStdout, AttachStderr),
// the payload's length as 4 bytes big-endian, the payload.

// Streams of attach frames.
const (
	AttachStdout byte = 1
	AttachStderr byte = 2
)

// maxAttachFrame bounds a frame's payload (stage1 sends at most its copy
// buffer, 32 KiB).
const maxAttachFrame = 1 << 20

// AttachSocket is where a sandbox pod's supervisor takes attach clients.
func (d Dir) AttachSocket() string { return filepath.Join(d.Stage1Dir(), "attach.sock") }

// AttachFrameHeader is the header of a frame of n bytes of stream.
func AttachFrameHeader(stream byte, n int) [5]byte {
	var h [5]byte
	h[0] = stream
	binary.BigEndian.PutUint32(h[1:], uint32(n))
	return h
}

// ReadAttachFrames copies frames from r to stdout and stderr (either may
// be nil: its frames are dropped) until r ends.
func ReadAttachFrames(r io.Reader, stdout, stderr io.Writer) error {
	br := bufio.NewReader(r)
	var h [5]byte
	for {
		if _, err := io.ReadFull(br, h[:]); err != nil {
			if err == io.EOF {
				return nil
			}
			return fmt.Errorf("attach frame: %w", err)
		}
		n := binary.BigEndian.Uint32(h[1:])
		if n > maxAttachFrame {
			return fmt.Errorf("attach frame of %d bytes: more than %d", n, maxAttachFrame)
		}
		var w io.Writer
		switch h[0] {
		case AttachStdout:
			w = stdout
		case AttachStderr:
			w = stderr
		default:
			return fmt.Errorf("attach frame of unknown stream %d", h[0])
		}
		if w == nil {
			w = io.Discard
		}
		if _, err := io.CopyN(w, br, int64(n)); err != nil {
			return fmt.Errorf("attach frame: %w", err)
		}
	}
}

// Attach attaches to app of the sandbox pod in d: in (when not nil) goes
// to the app's stdin, its half-close when in ends; the app's output goes
// to stdout and stderr until the app's output ends or ctx does.
func Attach(ctx context.Context, d Dir, app string, in io.Reader, stdout, stderr io.Writer) error {
	var dialer net.Dialer
	nc, err := dialer.DialContext(ctx, "unix", d.AttachSocket())
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNoControl, err)
	}
	conn := nc.(*net.UnixConn)
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	hello := app + "\n"
	if in != nil {
		hello = app + " stdin\n"
	}
	if _, err := conn.Write([]byte(hello)); err != nil {
		return fmt.Errorf("attach to app %s: %w", app, err)
	}
	if in != nil {
		go func() {
			_, _ = io.Copy(conn, in)
			_ = conn.CloseWrite()
		}()
	}
	if err := ReadAttachFrames(conn, stdout, stderr); err != nil && ctx.Err() == nil {
		return fmt.Errorf("attach to app %s: %w", app, err)
	}
	return ctx.Err()
}
