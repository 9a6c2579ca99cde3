package unpack

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

type entry struct {
	name, body, link string
	typ              byte
	mode             int64
}

func tarOf(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: e.mode, Size: int64(len(e.body))}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	return buf.Bytes()
}

func apply(t *testing.T, root string, entries ...entry) error {
	t.Helper()
	_, err := Apply(context.Background(), bytes.NewReader(tarOf(t, entries...)), root, Options{})
	return err
}

func TestApplyWritesFilesLinksAndModes(t *testing.T) {
	root := t.TempDir()
	err := apply(t, root,
		entry{name: "bin/", typ: tar.TypeDir, mode: 0o755},
		entry{name: "bin/tool", body: "#!/bin/sh\n", mode: 0o4755},
		entry{name: "bin/alias", typ: tar.TypeSymlink, link: "tool"},
		entry{name: "bin/hard", typ: tar.TypeLink, link: "bin/tool"},
	)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(root, "bin/tool"))
	if err != nil || fi.Mode()&os.ModeSetuid == 0 || fi.Mode().Perm() != 0o755 {
		t.Fatalf("bin/tool: %v %v", fi.Mode(), err)
	}
	if l, _ := os.Readlink(filepath.Join(root, "bin/alias")); l != "tool" {
		t.Fatalf("symlink points at %q", l)
	}
	a, _ := os.Stat(filepath.Join(root, "bin/tool"))
	b, _ := os.Stat(filepath.Join(root, "bin/hard"))
	if !os.SameFile(a, b) {
		t.Fatal("hard link is not the same file")
	}
}

func TestWhiteoutsBecomeOverlayWhiteouts(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIP: whiteout device nodes and trusted xattrs need root")
	}
	root := t.TempDir()
	err := apply(t, root,
		entry{name: "etc/.wh.gone"},
		entry{name: "var/lib/.wh..wh..opq"},
	)
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(root, "etc/gone"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Fatalf("etc/gone: mode %o rdev %d, want a 0/0 character device", st.Mode, st.Rdev)
	}
	buf := make([]byte, 8)
	n, err := unix.Lgetxattr(filepath.Join(root, "var/lib"), "trusted.overlay.opaque", buf)
	if err != nil || string(buf[:n]) != "y" {
		t.Fatalf("var/lib opaque xattr: %q %v", buf[:n], err)
	}
	if _, err := os.Lstat(filepath.Join(root, "etc/.wh.gone")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("the .wh. marker itself was written")
	}
}

func TestHostileEntriesAreRefused(t *testing.T) {
	cases := map[string][]entry{
		"dotdot":           {{name: "../escape"}},
		"nested dotdot":    {{name: "a/../../escape"}},
		"absolute":         {{name: "/etc/escape"}},
		"hardlink outside": {{name: "link", typ: tar.TypeLink, link: "../../etc/passwd"}},
		"device node":      {{name: "dev/sda", typ: tar.TypeBlock}},
		"char device":      {{name: "dev/mem", typ: tar.TypeChar}},
		"whiteout dotdot":  {{name: "../.wh.victim"}},
	}
	for name, entries := range cases {
		t.Run(name, func(t *testing.T) {
			parent := t.TempDir()
			root := filepath.Join(parent, "root")
			os.Mkdir(root, 0o755)
			if err := apply(t, root, entries...); err == nil {
				t.Fatal("accepted")
			}
			ents, _ := os.ReadDir(parent)
			if len(ents) != 1 {
				t.Fatalf("something landed outside the root: %v", ents)
			}
		})
	}
}

// A symlink planted by one entry cannot carry a later entry out of the root.
func TestSymlinkCannotCarryWritesOutside(t *testing.T) {
	parent := t.TempDir()
	root := filepath.Join(parent, "root")
	outside := filepath.Join(parent, "outside")
	os.Mkdir(root, 0o755)
	os.Mkdir(outside, 0o755)
	err := apply(t, root,
		entry{name: "evil", typ: tar.TypeSymlink, link: outside},
		entry{name: "evil/pwned", body: "x"},
		entry{name: "rel", typ: tar.TypeSymlink, link: "../../../../../../" + outside},
		entry{name: "rel/pwned2", body: "x"},
	)
	if err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Fatalf("wrote outside the root: %v", ents)
	}
	if _, err := os.Stat(filepath.Join(root, outside, "pwned")); err != nil {
		t.Fatalf("the write should land inside the root, under the symlink's target: %v", err)
	}
}

func TestSizeLimitStopsBombs(t *testing.T) {
	root := t.TempDir()
	_, err := Apply(context.Background(), bytes.NewReader(tarOf(t, entry{name: "big", body: strings.Repeat("x", 4096)})), root, Options{MaxBytes: 1000})
	if !errors.Is(err, ErrLimit) {
		t.Fatalf("err = %v, want ErrLimit", err)
	}
}

func TestDecompressRecognisesFormats(t *testing.T) {
	plain := tarOf(t, entry{name: "f", body: "hello"})
	r, err := Decompress(bytes.NewReader(plain))
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	if _, err := Apply(context.Background(), r, root, Options{}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "f")); string(b) != "hello" {
		t.Fatalf("got %q", b)
	}
}

func FuzzApply(f *testing.F) {
	f.Add(tarOf(f, entry{name: "a/b", body: "x"}, entry{name: "a/.wh.c"}))
	f.Add(tarOf(f, entry{name: "l", typ: tar.TypeSymlink, link: "/"}, entry{name: "l/x", body: "y"}))
	f.Add(tarOf(f, entry{name: "h", typ: tar.TypeLink, link: "../x"}))
	f.Fuzz(func(t *testing.T, data []byte) {
		parent := t.TempDir()
		root := filepath.Join(parent, "root")
		os.Mkdir(root, 0o755)
		_, _ = Apply(context.Background(), bytes.NewReader(data), root, Options{MaxBytes: 1 << 20})
		if ents, _ := os.ReadDir(parent); len(ents) != 1 {
			t.Fatalf("something landed outside the root: %v", ents)
		}
	})
}
