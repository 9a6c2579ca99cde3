//go:build functional

package functional

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

type tarEntry struct {
	name, body, link string
	typ              byte
	mode             int64
	// size, when set, is the size the header claims, with no body: a
	// huge (or sparse-expanded) file that nobody sends in full.
	size int64
}

func hostileTar(entries ...tarEntry) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		mode := e.mode
		if mode == 0 {
			mode = 0o755
		}
		h := &tar.Header{Name: e.name, Typeflag: typ, Linkname: e.link, Mode: mode}
		if typ == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if e.size > 0 {
			h.Size = e.size
			tw.WriteHeader(h)
			tw.Flush()
			return buf.Bytes()
		}
		tw.WriteHeader(h)
		if typ == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	return buf.Bytes()
}

// writeImageLayout writes an OCI layout of one image with the given layer
// (gzip-compressed) and config edits, as an attacker would hand it over.
func writeImageLayout(t *testing.T, dir string, layerTar []byte, edit func(*ocispec.Image, *ocispec.Manifest)) {
	t.Helper()
	put := func(b []byte) ocispec.Descriptor {
		d := digest.FromBytes(b)
		p := filepath.Join(dir, "blobs", "sha256", d.Encoded())
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return ocispec.Descriptor{Digest: d, Size: int64(len(b))}
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(layerTar)
	zw.Close()
	cfg := ocispec.Image{
		Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"},
		Config:   ocispec.ImageConfig{Cmd: []string{"/bin/true"}},
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromBytes(layerTar)}},
	}
	ld := put(gz.Bytes())
	ld.MediaType = ocispec.MediaTypeImageLayerGzip
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Layers: []ocispec.Descriptor{ld}}
	m.SchemaVersion = 2
	if edit != nil {
		edit(&cfg, &m)
	}
	cb, _ := json.Marshal(cfg)
	m.Config = put(cb)
	m.Config.MediaType = ocispec.MediaTypeImageConfig
	mb, _ := json.Marshal(m)
	md := put(mb)
	md.MediaType = ocispec.MediaTypeImageManifest
	md.Annotations = map[string]string{ocispec.AnnotationRefName: "hostile"}
	idx := ocispec.Index{Manifests: []ocispec.Descriptor{md}}
	idx.SchemaVersion = 2
	ib, _ := json.Marshal(idx)
	os.WriteFile(filepath.Join(dir, "index.json"), ib, 0o644)
	os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
}

// snapshot hashes every file under root, to tell whether anything there
// changed.
func snapshot(t *testing.T, root string) map[string][32]byte {
	t.Helper()
	out := map[string][32]byte{}
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return nil
		}
		var h [32]byte
		if fi.Mode().IsRegular() {
			f, err := os.Open(p)
			if err == nil {
				hh := sha256.New()
				io.Copy(hh, f)
				f.Close()
				copy(h[:], hh.Sum(nil))
			}
		}
		out[p] = h
		return nil
	})
	return out
}

// A corpus of hostile images, each refused with a one-line error naming
// the image and the cause; the host's sentinel files are untouched,
// nothing lands outside the store, and the store holds no part of them.
func TestHostileImagesAreRefusedAndTheHostIsUnchanged(t *testing.T) {
	e := newEnv(t)
	sentinel := filepath.Join(e.root, "sentinel")
	os.MkdirAll(filepath.Join(sentinel, "etc"), 0o755)
	os.WriteFile(filepath.Join(sentinel, "etc", "passwd"), []byte("root:x:0:0::/root:/bin/sh\n"), 0o644)
	rel, _ := filepath.Rel("/", sentinel) // relative to /, for ../ climbs
	climb := strings.Repeat("../", 12) + rel
	before := snapshot(t, sentinel)

	cases := []struct {
		name  string
		layer []byte
		edit  func(*ocispec.Image, *ocispec.Manifest)
		why   string
	}{
		{"dotdot", hostileTar(tarEntry{name: climb + "/etc/passwd", body: "pwned"}), nil, "path with .. refused"},
		{"absolute", hostileTar(tarEntry{name: sentinel + "/etc/passwd", body: "pwned"}), nil, "absolute path refused"},
		{"symlink-then-write", hostileTar(
			tarEntry{name: "evil", typ: tar.TypeSymlink, link: sentinel + "/etc"},
			tarEntry{name: "evil/passwd", body: "pwned"},
			tarEntry{name: "refuse", typ: tar.TypeChar}), nil, "device node refused"},
		{"hardlink-out", hostileTar(tarEntry{name: "l", typ: tar.TypeLink, link: climb + "/etc/passwd"}), nil, "refused"},
		{"whiteout-out", hostileTar(tarEntry{name: climb + "/etc/.wh.passwd"}), nil, "path with .. refused"},
		{"device", hostileTar(tarEntry{name: "dev/kmem", typ: tar.TypeBlock}), nil, "device node refused"},
		{"bomb", hostileTar(tarEntry{name: "zeros", body: strings.Repeat("\x00", 8<<20)}), nil, "exceeds the unpacked size limit"},
		{"huge-file", hostileTar(tarEntry{name: "huge", size: 1 << 40}), nil, "exceeds the unpacked size limit"},
		{"wrong-diffid", hostileTar(tarEntry{name: "f", body: "x"}), func(c *ocispec.Image, m *ocispec.Manifest) {
			c.RootFS.DiffIDs[0] = digest.FromString("something else")
		}, "digest mismatch"},
		{"wrong-size", hostileTar(tarEntry{name: "f", body: "x"}), func(c *ocispec.Image, m *ocispec.Manifest) {
			m.Layers[0].Size = 3
		}, "size mismatch"},
		{"absurd-diffids", hostileTar(tarEntry{name: "f", body: "x"}), func(c *ocispec.Image, m *ocispec.Manifest) {
			for i := 0; i < 1000; i++ {
				c.RootFS.DiffIDs = append(c.RootFS.DiffIDs, digest.FromString(fmt.Sprint(i)))
			}
		}, "diff IDs"},
		{"bad-rootfs-type", hostileTar(tarEntry{name: "f", body: "x"}), func(c *ocispec.Image, m *ocispec.Manifest) {
			c.RootFS.Type = "../../etc"
		}, "rootfs type"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(e.root, "img-"+c.name)
			writeImageLayout(t, dir, c.layer, c.edit)
			r := e.orbit("--max-layer-size=4M", "fetch", "oci:"+dir)
			if r.code == 0 {
				t.Fatalf("accepted")
			}
			msg := strings.TrimSpace(r.stderr)
			if strings.Contains(msg, "\n") || !strings.Contains(msg, dir) || (c.why != "" && !strings.Contains(msg, c.why)) {
				t.Errorf("error %q: want one line naming %s and %q", msg, dir, c.why)
			}
		})
	}
	after := snapshot(t, sentinel)
	if len(after) != len(before) {
		t.Errorf("files under the sentinel: %d before, %d after", len(before), len(after))
	}
	for p, h := range before {
		if after[p] != h {
			t.Errorf("%s changed", p)
		}
	}
	if r := e.orbit("image", "list", "--format=json"); strings.Contains(r.stdout, "hostile") {
		t.Errorf("a hostile image is in the store: %s", r.stdout)
	}
	for _, sub := range []string{"images/layers", "images/tmp"} {
		if ents, _ := os.ReadDir(filepath.Join(e.data, sub)); len(ents) != 0 {
			t.Errorf("%s holds %d entries", sub, len(ents))
		}
	}
}

// Entries that are legitimate in images but dangerous if handled naively:
// a setuid-root file, an entry given twice, a directory replaced by a
// symlink out of the root and then written through. They are stored (real
// images have setuid binaries and overwrite their own files), but the
// write stays inside the layer, the last entry of a name wins, and the
// setuid file is out of reach of the host's unprivileged users: the store
// and pod directories are root's alone.
func TestSetuidAndDuplicateEntriesStayInsideTheStore(t *testing.T) {
	e := newEnv(t)
	sentinel := filepath.Join(e.root, "sentinel")
	os.MkdirAll(filepath.Join(sentinel, "etc"), 0o755)
	os.WriteFile(filepath.Join(sentinel, "etc", "passwd"), []byte("root:x:0:0::/root:/bin/sh\n"), 0o644)
	before := snapshot(t, sentinel)
	dir := filepath.Join(e.root, "img")
	writeImageLayout(t, dir, hostileTar(
		tarEntry{name: "suid", body: "#!/bin/sh\n", mode: 0o4755},
		tarEntry{name: "dup", body: "first"},
		tarEntry{name: "dup", body: "second"},
		tarEntry{name: "d", typ: tar.TypeDir},
		tarEntry{name: "d", typ: tar.TypeSymlink, link: filepath.Join(sentinel, "etc")},
		tarEntry{name: "d/passwd", body: "pwned"},
	), nil)
	e.mustOrbit("fetch", "oci:"+dir)
	out := filepath.Join(e.root, "out")
	e.mustOrbit("image", "extract", "hostile", out)
	if b, _ := os.ReadFile(filepath.Join(out, "rootfs", "dup")); string(b) != "second" {
		t.Errorf("dup holds %q, want the last entry's %q", b, "second")
	}
	fi, err := os.Stat(filepath.Join(out, "rootfs", "suid"))
	if err != nil || fi.Mode()&os.ModeSetuid == 0 {
		t.Errorf("suid: %v, %v: want the setuid bit kept inside the image", fi, err)
	}
	for p, h := range before {
		if got := snapshot(t, sentinel)[p]; got != h {
			t.Errorf("%s changed: the write went through the symlink out of the layer", p)
		}
	}
	// The layer's setuid file, and the store itself, as a host user sees them.
	layers, _ := filepath.Glob(filepath.Join(e.data, "images", "layers", "*", "suid"))
	if len(layers) != 1 {
		t.Fatalf("the stored layer's suid file: %v", layers)
	}
	for _, p := range []string{layers[0], filepath.Join(e.data, "images", "blobs")} {
		c := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "stat", p)
		if out, err := c.CombinedOutput(); err == nil {
			t.Errorf("an unprivileged host user reaches %s: %s", p, out)
		}
	}
}
