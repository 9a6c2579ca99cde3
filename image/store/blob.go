package store

import (
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"

	digest "github.com/opencontainers/go-digest"
)

// ErrDigestMismatch is returned when content does not hash to the digest it
// was fetched under.
var ErrDigestMismatch = errors.New("digest mismatch")

// ErrSizeMismatch is returned when a blob's length is not the one its
// descriptor gives.
var ErrSizeMismatch = errors.New("size mismatch")

// BlobWriter writes a blob to a temporary file, hashing it; Commit moves it
// into place only if it hashed to the expected digest.
type BlobWriter struct {
	s        *Store
	f        *os.File
	h        hash.Hash
	n        int64
	expected digest.Digest
	done     bool
}

// NewBlobWriter starts a blob expected to have digest d.
func (s *Store) NewBlobWriter(d digest.Digest) (*BlobWriter, error) {
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("blob digest %q: %w", d, err)
	}
	f, err := s.createTempFile("blob-")
	if err != nil {
		return nil, fmt.Errorf("create blob temp file: %w", err)
	}
	return &BlobWriter{s: s, f: f, h: d.Algorithm().Hash(), expected: d}, nil
}

// Write writes to the temp file and the hash.
func (w *BlobWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.h.Write(p[:n])
	w.n += int64(n)
	return n, err
}

// Size is the bytes written so far.
func (w *BlobWriter) Size() int64 { return w.n }

// Verify checks the digest of what was written without committing.
func (w *BlobWriter) Verify() error {
	got := digest.NewDigest(w.expected.Algorithm(), w.h)
	if got != w.expected {
		return fmt.Errorf("blob %s: content hashes to %s: %w", w.expected, got, ErrDigestMismatch)
	}
	return nil
}

// Commit verifies, fsyncs and renames the blob into place. A blob already
// present (another process won the race) is not an error.
func (w *BlobWriter) Commit() error {
	defer w.Discard()
	if err := w.Verify(); err != nil {
		return err
	}
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("sync blob %s: %w", w.expected, err)
	}
	if err := w.f.Close(); err != nil {
		return fmt.Errorf("close blob %s: %w", w.expected, err)
	}
	dst := w.s.BlobPath(w.expected)
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	if err := os.Rename(w.f.Name(), dst); err != nil {
		return fmt.Errorf("commit blob %s: %w", w.expected, err)
	}
	w.done = true
	return syncDir(filepath.Dir(dst))
}

// Discard drops an uncommitted blob.
func (w *BlobWriter) Discard() {
	if !w.done {
		w.f.Close()
		os.Remove(w.f.Name())
		w.done = true
	}
}

// WriteBlob stores content read from r under digest d.
func (s *Store) WriteBlob(d digest.Digest, r io.Reader) (int64, error) {
	if s.HasBlob(d) {
		n, err := io.Copy(io.Discard, r)
		return n, err
	}
	w, err := s.NewBlobWriter(d)
	if err != nil {
		return 0, err
	}
	defer w.Discard()
	if _, err := io.Copy(w, r); err != nil {
		return w.n, fmt.Errorf("write blob %s: %w", d, err)
	}
	return w.n, w.Commit()
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
