// Package store keeps images on disk, shared by every orbit process at once.
//
//	images/blobs/sha256/<hex>   blobs by digest (manifests, configs, layers as fetched)
//	images/layers/<chainid>/    each layer extracted once, a read-only overlay lowerdir
//	images/index.db             bbolt: image records and names
//	images/tmp/                 work in progress; never read
//
// A write is invisible until it is committed: a blob is written to tmp,
// hashed while written, fsynced and renamed into place only if its digest is
// the one expected; a layer is extracted into tmp and renamed to its chain ID
// only when complete and verified; an image becomes visible by name only in
// the bbolt transaction that records it, after all its blobs and layers are
// in place. So a process killed at any point leaves only litter in tmp
// (swept by GC), and two processes importing the same image both succeed,
// the second finding the first's blobs and layers.
package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	digest "github.com/opencontainers/go-digest"
)

// Errors callers decide on.
var (
	ErrNotFound  = errors.New("image not found")
	ErrAmbiguous = errors.New("image reference is ambiguous")
	ErrInUse     = errors.New("image is in use")
)

// Image is what the index records of an image.
type Image struct {
	// ID is the digest of the image manifest.
	ID        digest.Digest `json:"id"`
	Names     []string      `json:"names"`
	MediaType string        `json:"mediaType"`
	Config    digest.Digest `json:"config"`
	Layers    []Layer       `json:"layers"`
	// Size is the bytes of the image's blobs as stored.
	Size     int64     `json:"size"`
	Imported time.Time `json:"imported"`
	LastUsed time.Time `json:"lastUsed"`
}

// Layer is one layer of an image.
type Layer struct {
	Digest    digest.Digest `json:"digest"`
	DiffID    digest.Digest `json:"diffID"`
	ChainID   digest.Digest `json:"chainID"`
	MediaType string        `json:"mediaType"`
	Size      int64         `json:"size"`
}

// Store is an image store rooted at a directory.
type Store struct {
	dir string
}

// Open opens (creating if needed) the store under dir.
func Open(dir string) (*Store, error) {
	s := &Store{dir: dir}
	for _, d := range []string{s.blobDir(), s.layerDir(), s.tmpDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("create image store: %w", err)
		}
	}
	return s, nil
}

// Dir is the store's root directory.
func (s *Store) Dir() string { return s.dir }

func (s *Store) blobDir() string  { return filepath.Join(s.dir, "blobs", "sha256") }
func (s *Store) layerDir() string { return filepath.Join(s.dir, "layers") }
func (s *Store) tmpDir() string   { return filepath.Join(s.dir, "tmp") }
func (s *Store) dbPath() string   { return filepath.Join(s.dir, "index.db") }

// BlobPath is where the blob d lives once committed.
func (s *Store) BlobPath(d digest.Digest) string {
	return filepath.Join(s.dir, "blobs", d.Algorithm().String(), d.Encoded())
}

// LayerPath is where the layer with chain ID c is extracted.
func (s *Store) LayerPath(c digest.Digest) string {
	return filepath.Join(s.layerDir(), c.Encoded())
}

// ReadBlob returns the content of a committed blob.
func (s *Store) ReadBlob(d digest.Digest) ([]byte, error) {
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("blob %q: %w", d, err)
	}
	b, err := os.ReadFile(s.BlobPath(d))
	if err != nil {
		return nil, fmt.Errorf("read blob %s: %w", d, err)
	}
	return b, nil
}

// HasBlob reports whether blob d is committed.
func (s *Store) HasBlob(d digest.Digest) bool {
	_, err := os.Stat(s.BlobPath(d))
	return err == nil
}

// HasLayer reports whether the layer with chain ID c is extracted.
func (s *Store) HasLayer(c digest.Digest) bool {
	_, err := os.Stat(s.LayerPath(c))
	return err == nil
}
