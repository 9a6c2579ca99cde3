package store_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/orbit-pods/orbit/image/archive"
	"github.com/orbit-pods/orbit/image/source"
	"github.com/orbit-pods/orbit/image/store"
)

// testImage builds a two-layer image from small trees.
func testImage(t *testing.T) v1.Image {
	t.Helper()
	base, top := t.TempDir(), t.TempDir()
	os.MkdirAll(filepath.Join(base, "etc"), 0o755)
	os.WriteFile(filepath.Join(base, "etc", "os-release"), []byte("ID=test\n"), 0o644)
	os.WriteFile(filepath.Join(top, "hello"), []byte("hello\n"), 0o755)
	img, err := archive.ImageFromDirs([]string{base, top}, ocispec.ImageConfig{Cmd: []string{"/hello"}})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestImportStoresBlobsLayersAndNames(t *testing.T) {
	s, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	img, err := s.Import(context.Background(), testImage(t), []string{"example.com/test/app:1"}, store.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(img.Layers) != 2 {
		t.Fatalf("%d layers", len(img.Layers))
	}
	for _, l := range img.Layers {
		if !s.HasBlob(l.Digest) || !s.HasLayer(l.ChainID) {
			t.Fatalf("layer %s: blob %v, extracted %v", l.Digest, s.HasBlob(l.Digest), s.HasLayer(l.ChainID))
		}
	}
	if b, _ := os.ReadFile(filepath.Join(s.LayerPath(img.Layers[1].ChainID), "hello")); string(b) != "hello\n" {
		t.Fatalf("top layer content %q", b)
	}
	for _, ref := range []string{"example.com/test/app:1", "app:1", img.ID.String(), img.ID.Encoded()[:12]} {
		got, err := s.Resolve(ref)
		if err != nil || got.ID != img.ID {
			t.Errorf("Resolve(%q) = %v, %v", ref, got, err)
		}
	}
	if _, err := s.Resolve("app:2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Resolve(app:2): %v, want ErrNotFound", err)
	}
}

func TestConcurrentImportsOfOneImageBothSucceed(t *testing.T) {
	s, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	img := testImage(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = s.Import(context.Background(), img, []string{"race:latest"}, store.ImportOptions{})
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	imgs, err := s.List()
	if err != nil || len(imgs) != 1 {
		t.Fatalf("List: %d images, %v", len(imgs), err)
	}
	if tmp, _ := os.ReadDir(filepath.Join(s.Dir(), "tmp")); len(tmp) != 0 {
		t.Fatalf("litter in tmp: %v", tmp)
	}
}

// A blob that does not hash to its digest is refused and leaves the store
// as it was.
func TestTamperedLayerIsRefusedAndStoreUnchanged(t *testing.T) {
	dir := t.TempDir()
	var buf bytes.Buffer
	if err := archive.WriteOCIArchive(&buf, testImage(t), "tampered:latest"); err != nil {
		t.Fatal(err)
	}
	// Flip a byte in the last blob written (the top layer).
	b := buf.Bytes()
	idx := bytes.LastIndex(b, []byte("blobs/sha256/"))
	b[idx+512+20] ^= 0xff
	f := filepath.Join(dir, "img.tar")
	os.WriteFile(f, b, 0o644)

	s, err := store.Open(filepath.Join(dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	o, err := source.Open(context.Background(), source.Source{Transport: source.OCIArchive, Path: f}, source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	_, err = s.Import(context.Background(), o.Image, []string{o.Name}, store.ImportOptions{})
	if !errors.Is(err, store.ErrDigestMismatch) {
		t.Fatalf("err = %v, want a digest mismatch", err)
	}
	if imgs, _ := s.List(); len(imgs) != 0 {
		t.Fatalf("index has %d images", len(imgs))
	}
	for _, sub := range []string{"tmp"} {
		if ents, _ := os.ReadDir(filepath.Join(s.Dir(), sub)); len(ents) != 0 {
			t.Fatalf("%s not empty: %v", sub, ents)
		}
	}
}
