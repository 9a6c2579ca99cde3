//go:build functional

package functional

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// demoLayout unpacks the demo archive into a layout directory to spoil.
func demoLayout(t *testing.T) (dir string, idx ocispec.Index, m ocispec.Manifest) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "layout")
	os.Mkdir(dir, 0o755)
	mustRun(t, "tar", "-xf", filepath.Join(build, "demo.oci.tar"), "-C", dir)
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		t.Fatal(err)
	}
	mb, err := os.ReadFile(blobFile(dir, idx.Manifests[0].Digest))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(mb, &m); err != nil {
		t.Fatal(err)
	}
	return dir, idx, m
}

func blobFile(dir string, d digest.Digest) string {
	return filepath.Join(dir, "blobs", d.Algorithm().String(), d.Encoded())
}

// setManifest stores raw as the layout's manifest, the index pointing at it.
func setManifest(t *testing.T, dir string, idx ocispec.Index, raw []byte, mediaType string) {
	t.Helper()
	d := digest.FromBytes(raw)
	if err := os.WriteFile(blobFile(dir, d), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	idx.Manifests[0].Digest, idx.Manifests[0].Size, idx.Manifests[0].MediaType = d, int64(len(raw)), mediaType
	b, _ := json.Marshal(idx)
	if err := os.WriteFile(filepath.Join(dir, "index.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestBadImagesAreRefusedWithOneLineAndStoreUnchanged(t *testing.T) {
	cases := []struct {
		name  string
		spoil func(t *testing.T, dir string, idx ocispec.Index, m ocispec.Manifest)
		why   []string
	}{
		{"malformed manifest", func(t *testing.T, dir string, idx ocispec.Index, m ocispec.Manifest) {
			setManifest(t, dir, idx, []byte(`{"schemaVersion": 2, "config": {`), ocispec.MediaTypeImageManifest)
		}, []string{"unexpected end of JSON input"}},
		{"unknown media type", func(t *testing.T, dir string, idx ocispec.Index, m ocispec.Manifest) {
			m.MediaType = "application/vnd.example.thing.v1+json"
			raw, _ := json.Marshal(m)
			setManifest(t, dir, idx, raw, m.MediaType)
		}, []string{`unsupported media type "application/vnd.example.thing.v1+json"`}},
		{"digest mismatch", func(t *testing.T, dir string, idx ocispec.Index, m ocispec.Manifest) {
			f := blobFile(dir, m.Layers[0].Digest)
			b, _ := os.ReadFile(f)
			b[len(b)/2] ^= 0xff
			os.WriteFile(f, b, 0o644)
		}, []string{"digest mismatch"}},
		{"truncated blob", func(t *testing.T, dir string, idx ocispec.Index, m ocispec.Manifest) {
			f := blobFile(dir, m.Layers[0].Digest)
			b, _ := os.ReadFile(f)
			os.WriteFile(f, b[:len(b)/2], 0o644)
		}, []string{"digest mismatch", "unexpected EOF", "size mismatch"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir, idx, m := demoLayout(t)
			c.spoil(t, dir, idx, m)
			e := newEnv(t)
			oneLine(t, e.orbit("fetch", "oci:"+dir), "oci:"+dir, c.why...)
			e.storeIsEmpty(t)
		})
	}
}
