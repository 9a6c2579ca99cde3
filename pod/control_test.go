package pod

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// serveOnce answers one control request on d's socket with handle's error.
func serveOnce(t *testing.T, d Dir, handle func(*ControlRequest, []*os.File) string) <-chan struct{} {
	t.Helper()
	if err := os.MkdirAll(d.Stage1Dir(), 0o755); err != nil {
		t.Fatal(err)
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: d.ControlSocket(), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer l.Close()
		c, err := l.AcceptUnix()
		if err != nil {
			return
		}
		defer c.Close()
		var resp ControlResponse
		req, files, err := ReadControlRequest(c)
		if err != nil {
			resp.Error = err.Error()
		} else {
			resp.Error = handle(req, files)
		}
		_ = writeJSON(c, &resp)
	}()
	return done
}

func writeJSON(w io.Writer, v any) error { return json.NewEncoder(w).Encode(v) }

// The files of a request arrive with it, in order, open.
func TestControlCarriesFiles(t *testing.T) {
	d := Dir(t.TempDir())
	tmp := t.TempDir()
	var sent []*os.File
	for _, n := range []string{"a", "b"} {
		if err := os.WriteFile(filepath.Join(tmp, n), []byte("content of "+n), 0o644); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(filepath.Join(tmp, n))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		sent = append(sent, f)
	}
	var got []string
	done := serveOnce(t, d, func(req *ControlRequest, files []*os.File) string {
		if req.Op != OpAdd || strings.Join(req.VolumeTrees, ",") != "va,vb" {
			return "wrong request"
		}
		for _, f := range files {
			b, err := io.ReadAll(f)
			if err != nil {
				return err.Error()
			}
			got = append(got, string(b))
			f.Close()
		}
		return ""
	})
	// A large request: the descriptors ride on its first byte only.
	app := &App{Name: "x", MaskedPaths: []string{strings.Repeat("y", 1<<18)}}
	if err := Control(context.Background(), d, &ControlRequest{Op: OpAdd, App: app, VolumeTrees: []string{"va", "vb"}}, sent...); err != nil {
		t.Fatal(err)
	}
	<-done
	if strings.Join(got, "|") != "content of a|content of b" {
		t.Fatalf("files read %q", got)
	}
}

// A request with no files is read as before, and files without names in
// VolumeTrees are refused on both ends.
func TestControlFilesMustBeNamed(t *testing.T) {
	d := Dir(t.TempDir())
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	err = Control(context.Background(), d, &ControlRequest{Op: OpStart, Name: "x"}, f)
	if err == nil || !strings.Contains(err.Error(), "1 files for 0 volume trees") {
		t.Fatalf("unnamed file sent: %v", err)
	}
	done := serveOnce(t, d, func(req *ControlRequest, files []*os.File) string {
		if req.Op != OpStart || req.Name != "x" || len(files) != 0 {
			return "wrong request"
		}
		return ""
	})
	if err := Control(context.Background(), d, &ControlRequest{Op: OpStart, Name: "x"}); err != nil {
		t.Fatal(err)
	}
	<-done
}

func TestAttachFramesRoundTrip(t *testing.T) {
	var b bytes.Buffer
	for _, f := range []struct {
		s byte
		p string
	}{{AttachStdout, "out 1\n"}, {AttachStderr, "err\n"}, {AttachStdout, ""}, {AttachStdout, "out 2\n"}} {
		h := AttachFrameHeader(f.s, len(f.p))
		b.Write(h[:])
		b.WriteString(f.p)
	}
	var out, errb bytes.Buffer
	if err := ReadAttachFrames(bytes.NewReader(b.Bytes()), &out, &errb); err != nil {
		t.Fatal(err)
	}
	if out.String() != "out 1\nout 2\n" || errb.String() != "err\n" {
		t.Fatalf("stdout %q stderr %q", out.String(), errb.String())
	}
	if err := ReadAttachFrames(bytes.NewReader(b.Bytes()[:8]), &out, nil); err == nil {
		t.Error("a cut frame read without error")
	}
	h := AttachFrameHeader(9, 1)
	if err := ReadAttachFrames(bytes.NewReader(append(h[:], 'x')), &out, nil); err == nil || !strings.Contains(err.Error(), "unknown stream 9") {
		t.Errorf("unknown stream: %v", err)
	}
}
