package store_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/orbit-pods/orbit/image/store"
)

// A damaged index.db is moved aside and rebuilt from the image records:
// no image and no name is lost.
func TestCorruptIndexIsRebuiltFromRecords(t *testing.T) {
	dir := t.TempDir()
	s, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	img, err := s.Import(context.Background(), testImage(t), []string{"example.com/app:1", "app:stable"}, store.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "index.db")
	f, err := os.OpenFile(db, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt(make([]byte, 8192), 0) // both meta pages
	f.Close()

	got, err := s.Resolve("app:stable")
	if err != nil || got.ID != img.ID {
		t.Fatalf("Resolve after corruption: %v, %v", got, err)
	}
	imgs, err := s.List()
	if err != nil || len(imgs) != 1 || len(imgs[0].Names) != 2 {
		t.Fatalf("List after corruption: %+v, %v", imgs, err)
	}
	aside, _ := filepath.Glob(db + ".corrupt-*")
	if len(aside) != 1 {
		t.Fatalf("the damaged index was not kept aside: %v", aside)
	}
}

// An empty index.db, as a process killed inside bbolt's open leaves it, is
// an empty index to readers: listing and resolving work, and an import
// after it records as usual.
func TestEmptyIndexFileReadsAsEmpty(t *testing.T) {
	dir := t.TempDir()
	s, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "index.db"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if imgs, err := s.List(); err != nil || len(imgs) != 0 {
		t.Fatalf("List of an empty index file: %v, %v", imgs, err)
	}
	if _, err := s.Resolve("app:1"); err == nil {
		t.Fatal("Resolve found an image in an empty index")
	}
	if _, err := s.Import(context.Background(), testImage(t), []string{"app:1"}, store.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	if imgs, err := s.List(); err != nil || len(imgs) != 1 {
		t.Fatalf("List after an import: %v, %v", imgs, err)
	}
}
