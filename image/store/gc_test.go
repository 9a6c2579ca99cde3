package store_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/orbit-pods/orbit/image/archive"
	"github.com/orbit-pods/orbit/image/source"
	"github.com/orbit-pods/orbit/image/store"
)

func openStore(t *testing.T) *store.Store {
	t.Helper()
	s, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRemoveDropsImageAndTheBlobsOnlyItUses(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	img, err := s.Import(ctx, testImage(t), []string{"a:1"}, store.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(ctx, []digest.Digest{img.ID}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Resolve("a:1"); err == nil {
		t.Fatal("image still resolves after Remove")
	}
	for _, d := range []digest.Digest{img.ID, img.Config, img.Layers[0].Digest} {
		if s.HasBlob(d) {
			t.Errorf("blob %s left", d)
		}
	}
	for _, l := range img.Layers {
		if s.HasLayer(l.ChainID) {
			t.Errorf("layer %s left", l.ChainID)
		}
	}
}

func TestGCRemovesLitterButNotLockedWorkOrUsedBlobs(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	img, err := s.Import(ctx, testImage(t), []string{"a:1"}, store.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Litter: a temp file and a stray blob no image references.
	litter := filepath.Join(s.Dir(), "tmp", "blob-dead")
	os.WriteFile(litter, []byte("x"), 0o600)
	stray := digest.FromString("stray")
	if _, err := s.WriteBlob(stray, bytes.NewReader([]byte("stray"))); err != nil {
		t.Fatal(err)
	}
	// Work in progress: a blob writer holds its temp file locked.
	w, err := s.NewBlobWriter(digest.FromString("busy"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Discard()
	if err := s.GC(ctx, store.GCOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(litter); !os.IsNotExist(err) {
		t.Errorf("litter in tmp survived gc: %v", err)
	}
	if s.HasBlob(stray) {
		t.Error("unreferenced blob survived gc")
	}
	if _, err := w.Write([]byte("busy")); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatalf("blob being written when gc ran: %v", err)
	}
	if !s.HasBlob(img.Layers[1].Digest) || !s.HasLayer(img.Layers[1].ChainID) {
		t.Error("gc removed a layer an image uses")
	}
}

func TestRenderFlattensLayersApplyingWhiteouts(t *testing.T) {
	base, top := t.TempDir(), t.TempDir()
	os.MkdirAll(filepath.Join(base, "etc"), 0o755)
	os.WriteFile(filepath.Join(base, "etc", "gone"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(base, "etc", "kept"), []byte("old"), 0o644)
	os.MkdirAll(filepath.Join(base, "opaque"), 0o755)
	os.WriteFile(filepath.Join(base, "opaque", "hidden"), []byte("x"), 0o644)
	os.MkdirAll(filepath.Join(top, "etc"), 0o755)
	os.WriteFile(filepath.Join(top, "etc", ".wh.gone"), nil, 0o644)
	os.WriteFile(filepath.Join(top, "etc", "kept"), []byte("new"), 0o600)
	os.MkdirAll(filepath.Join(top, "opaque"), 0o755)
	os.WriteFile(filepath.Join(top, "opaque", ".wh..wh..opq"), nil, 0o644)
	os.WriteFile(filepath.Join(top, "opaque", "shown"), []byte("y"), 0o644)
	os.Symlink("etc/kept", filepath.Join(top, "link"))
	v, err := archive.ImageFromDirs([]string{base, top}, ocispec.ImageConfig{})
	if err != nil {
		t.Fatal(err)
	}
	s := openStore(t)
	img, err := s.Import(context.Background(), v, []string{"w:1"}, store.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "rootfs")
	if err := s.Render(context.Background(), img, dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "etc", "gone")); !os.IsNotExist(err) {
		t.Errorf("whited-out file: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "link")); string(b) != "new" {
		t.Errorf("etc/kept through link = %q, want the top layer's", b)
	}
	if fi, err := os.Stat(filepath.Join(dir, "etc", "kept")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("etc/kept mode: %v %v", fi, err)
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "opaque"))
	if len(ents) != 1 || ents[0].Name() != "shown" {
		t.Errorf("opaque directory holds %v, want only shown", ents)
	}
	if _, err := os.Stat(filepath.Join(dir, "etc", ".wh.gone")); !os.IsNotExist(err) {
		t.Errorf("whiteout marker copied: %v", err)
	}
}

func TestExportedImageImportsWithTheSameID(t *testing.T) {
	s := openStore(t)
	img, err := s.Import(context.Background(), testImage(t), []string{"a:1"}, store.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	v, err := s.V1Image(img)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "out.tar")
	out, _ := os.Create(f)
	if err := archive.WriteOCIArchive(out, v, "a:1"); err != nil {
		t.Fatal(err)
	}
	out.Close()
	o, err := source.Open(context.Background(), source.Source{Transport: source.OCIArchive, Path: f}, source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	again, err := openStore(t).Import(context.Background(), o.Image, []string{o.Name}, store.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if again.ID != img.ID || o.Name != "a:1" {
		t.Fatalf("round trip gave %s %q, want %s a:1", again.ID, o.Name, img.ID)
	}
}

// A blob the manifest names by annotation (an ACI's appc manifest) lives
// as long as its image.
func TestGCKeepsBlobsNamedByManifestAnnotations(t *testing.T) {
	s, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	extra := []byte(`{"acKind":"ImageManifest"}`)
	d := digest.FromBytes(extra)
	if _, err := s.WriteBlob(d, bytes.NewReader(extra)); err != nil {
		t.Fatal(err)
	}
	img := mutate.Annotations(testImage(t), map[string]string{"org.orbit-pods.appc.manifest": d.String()}).(v1.Image)
	if _, err := s.Import(context.Background(), img, []string{"annotated:1"}, store.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.GC(context.Background(), store.GCOptions{}); err != nil {
		t.Fatal(err)
	}
	if !s.HasBlob(d) {
		t.Fatal("gc removed the blob the manifest annotation names")
	}
}
