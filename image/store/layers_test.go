package store_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/google/go-containerregistry/pkg/compression"
	"github.com/orbit-pods/orbit/image/source"
	"github.com/orbit-pods/orbit/image/store"
)

// metaTar is a layer whose entries carry what must survive extraction:
// ownership, modes, a hard link, a user xattr and a file capability.
func metaTar(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	// cap_net_bind_service+ep as a v2 security.capability value.
	fcap := string([]byte{0, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	for _, h := range []*tar.Header{
		{Name: "srv/", Typeflag: tar.TypeDir, Mode: 0o750, Uid: 1000, Gid: 1000},
		{Name: "srv/data", Typeflag: tar.TypeReg, Mode: 0o640, Uid: 1000, Gid: 1001, Size: 4,
			PAXRecords: map[string]string{"SCHILY.xattr.user.origin": "test"}},
		{Name: "srv/link", Typeflag: tar.TypeLink, Linkname: "srv/data"},
		{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "bin/ping", Typeflag: tar.TypeReg, Mode: 0o755, Size: 4,
			PAXRecords: map[string]string{"SCHILY.xattr.security.capability": fcap}},
	} {
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write([]byte("data"))
		}
	}
	tw.Close()
	return buf.Bytes()
}

func imageWith(t *testing.T, raw []byte, opts ...tarball.LayerOption) v1.Image {
	t.Helper()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil }, opts...)
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), layer)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestLayerCompressionsAndMetadataSurviveImport(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIP: ownership and file capabilities need root")
	}
	raw := metaTar(t)
	cases := map[string]v1.Image{
		"gzip": imageWith(t, raw),
		"zstd": imageWith(t, raw, tarball.WithCompression(compression.ZStd), tarball.WithMediaType(types.OCILayerZStd)),
	}
	for name, img := range cases {
		t.Run(name, func(t *testing.T) {
			s, err := store.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			rec, err := s.Import(context.Background(), img, []string{name + ":1"}, store.ImportOptions{})
			if err != nil {
				t.Fatal(err)
			}
			checkMeta(t, s.LayerPath(rec.Layers[0].ChainID))
		})
	}
}

func checkMeta(t *testing.T, root string) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(root, "srv"), &st); err != nil || st.Uid != 1000 || st.Mode&0o777 != 0o750 {
		t.Errorf("srv: uid %d mode %o, %v", st.Uid, st.Mode&0o777, err)
	}
	var a, b unix.Stat_t
	unix.Stat(filepath.Join(root, "srv/data"), &a)
	unix.Stat(filepath.Join(root, "srv/link"), &b)
	if a.Uid != 1000 || a.Gid != 1001 || a.Mode&0o777 != 0o640 || a.Ino != b.Ino {
		t.Errorf("srv/data: %d:%d %o, hard link inode %d vs %d", a.Uid, a.Gid, a.Mode&0o777, a.Ino, b.Ino)
	}
	buf := make([]byte, 64)
	if n, err := unix.Getxattr(filepath.Join(root, "srv/data"), "user.origin", buf); err != nil || string(buf[:n]) != "test" {
		t.Errorf("user.origin xattr: %q %v", buf[:n], err)
	}
	if n, err := unix.Getxattr(filepath.Join(root, "bin/ping"), "security.capability", buf); err != nil || n != 20 {
		t.Errorf("file capability: %d bytes, %v", n, err)
	}
}

// writeLayout writes an OCI layout holding one image whose only layer is
// blob, stored as given (here: an uncompressed tar).
func writeLayout(t *testing.T, dir string, blob []byte, mediaType string) {
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
	cfg, _ := json.Marshal(ocispec.Image{
		Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"},
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromBytes(blob)}},
	})
	cd := put(cfg)
	cd.MediaType = ocispec.MediaTypeImageConfig
	ld := put(blob)
	ld.MediaType = mediaType
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: cd, Layers: []ocispec.Descriptor{ld}}
	m.SchemaVersion = 2
	mb, _ := json.Marshal(m)
	md := put(mb)
	md.MediaType = ocispec.MediaTypeImageManifest
	md.Annotations = map[string]string{ocispec.AnnotationRefName: "plain"}
	idx := ocispec.Index{Manifests: []ocispec.Descriptor{md}}
	idx.SchemaVersion = 2
	ib, _ := json.Marshal(idx)
	os.WriteFile(filepath.Join(dir, "index.json"), ib, 0o644)
	os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
}

func TestUncompressedLayerImports(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIP: ownership and file capabilities need root")
	}
	dir := t.TempDir()
	writeLayout(t, dir, metaTar(t), ocispec.MediaTypeImageLayer)
	o, err := source.Open(context.Background(), source.Source{Transport: source.OCILayout, Path: dir, Ref: "plain"}, source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	s, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	rec, err := s.Import(context.Background(), o.Image, []string{"plain:1"}, store.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkMeta(t, s.LayerPath(rec.Layers[0].ChainID))
}
