package store

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"

	"github.com/orbit-pods/orbit/internal/faultpoint"
)

var (
	bucketImages = []byte("images") // manifest digest -> Image JSON
	bucketNames  = []byte("names")  // name -> manifest digest
)

// view and update open the index for one transaction. bbolt holds an flock
// for as long as the file is open, so orbit processes keep it open only as
// long as a transaction lasts, and wait for each other.
func (s *Store) view(fn func(tx *bolt.Tx) error) error {
	// Read-only takes a shared flock: readers (every pod start resolving
	// its images) do not wait for each other. A missing index is an empty
	// one, made read-write; so is an empty file, which a process killed
	// inside bbolt's open leaves behind and which bbolt can only initialise
	// read-write.
	fi, err := os.Stat(s.dbPath())
	readOnly := err == nil && fi.Size() > 0
	return s.withIndex(readOnly, func(db *bolt.DB) error { return db.View(fn) })
}

func (s *Store) update(fn func(tx *bolt.Tx) error) error {
	return s.withIndex(false, func(db *bolt.DB) error {
		return db.Update(func(tx *bolt.Tx) error {
			for _, b := range [][]byte{bucketImages, bucketNames} {
				if _, err := tx.CreateBucketIfNotExists(b); err != nil {
					return err
				}
			}
			return fn(tx)
		})
	})
}

func getImage(tx *bolt.Tx, id digest.Digest) (*Image, error) {
	b := tx.Bucket(bucketImages)
	if b == nil {
		return nil, fmt.Errorf("%s: %w", id, ErrNotFound)
	}
	v := b.Get([]byte(id))
	if v == nil {
		return nil, fmt.Errorf("%s: %w", id, ErrNotFound)
	}
	var img Image
	if err := json.Unmarshal(v, &img); err != nil {
		return nil, fmt.Errorf("image index entry %s is corrupt: %w", id, err)
	}
	return &img, nil
}

func putImage(tx *bolt.Tx, img *Image) error {
	v, err := json.Marshal(img)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketImages).Put([]byte(img.ID), v)
}

// record adds img to the index and points its names at it, taking each name
// away from any image that had it.
func (s *Store) record(img *Image) error {
	touched := []*Image{img}
	err := s.update(func(tx *bolt.Tx) error {
		touched = touched[:1]
		if old, err := getImage(tx, img.ID); err == nil {
			img.Imported = old.Imported
			img.LastUsed = old.LastUsed
			for _, n := range old.Names {
				if !slices.Contains(img.Names, n) {
					img.Names = append(img.Names, n)
				}
			}
		}
		names := tx.Bucket(bucketNames)
		for _, n := range img.Names {
			prev := names.Get([]byte(n))
			if prev != nil && digest.Digest(prev) != img.ID {
				if other, err := getImage(tx, digest.Digest(prev)); err == nil {
					other.Names = slices.DeleteFunc(other.Names, func(x string) bool { return x == n })
					if err := putImage(tx, other); err != nil {
						return err
					}
					touched = append(touched, other)
				}
			}
			if err := names.Put([]byte(n), []byte(img.ID)); err != nil {
				return err
			}
		}
		sort.Strings(img.Names)
		return putImage(tx, img)
	})
	if err != nil {
		return err
	}
	faultpoint.Hit("fetch.index-updated")
	for _, t := range touched {
		if err := s.writeRecord(t); err != nil {
			return err
		}
	}
	return nil
}

// List returns every image, by first name then ID.
func (s *Store) List() ([]*Image, error) {
	var out []*Image
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketImages)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var img Image
			if err := json.Unmarshal(v, &img); err != nil {
				return fmt.Errorf("image index entry %s is corrupt: %w", k, err)
			}
			out = append(out, &img)
			return nil
		})
	})
	for _, img := range out {
		s.lastUsed(img)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := firstName(out[i]), firstName(out[j])
		if a != b {
			return a < b
		}
		return out[i].ID < out[j].ID
	})
	return out, err
}

func firstName(img *Image) string {
	if len(img.Names) > 0 {
		return img.Names[0]
	}
	return "~" // nameless images sort last
}

// Resolve finds an image by name (with ":latest" implied), by the last part
// of a name ("demo" finds "example.com/demo:latest" when only one image is so
// named), or by its ID or an unambiguous prefix of it.
func (s *Store) Resolve(ref string) (*Image, error) {
	var found *Image
	err := s.view(func(tx *bolt.Tx) error {
		names := tx.Bucket(bucketNames)
		if names == nil {
			return fmt.Errorf("%q: %w", ref, ErrNotFound)
		}
		for _, n := range []string{ref, NormalizeName(ref)} {
			if id := names.Get([]byte(n)); id != nil {
				img, err := getImage(tx, digest.Digest(id))
				found = img
				return err
			}
		}
		// An ID or ID prefix.
		hex := strings.TrimPrefix(ref, "sha256:")
		if len(hex) >= 6 && isHex(hex) {
			var ids []digest.Digest
			c := tx.Bucket(bucketImages).Cursor()
			prefix := []byte("sha256:" + hex)
			for k, _ := c.Seek(prefix); k != nil && strings.HasPrefix(string(k), string(prefix)); k, _ = c.Next() {
				ids = append(ids, digest.Digest(k))
			}
			if len(ids) > 1 {
				return fmt.Errorf("%q: %w", ref, ErrAmbiguous)
			}
			if len(ids) == 1 {
				img, err := getImage(tx, ids[0])
				found = img
				return err
			}
		}
		// A short name: the last path component of exactly one name.
		short := "/" + NormalizeName(ref)
		var ids []digest.Digest
		names.ForEach(func(k, v []byte) error {
			if strings.HasSuffix(string(k), short) && !slices.Contains(ids, digest.Digest(v)) {
				ids = append(ids, digest.Digest(v))
			}
			return nil
		})
		if len(ids) > 1 {
			return fmt.Errorf("%q: %w", ref, ErrAmbiguous)
		}
		if len(ids) == 1 {
			img, err := getImage(tx, ids[0])
			found = img
			return err
		}
		return fmt.Errorf("%q: %w", ref, ErrNotFound)
	})
	if found != nil {
		s.lastUsed(found)
	}
	return found, err
}

// Touch records that img was just used. The time is the mtime of a file
// of its own, not an index entry: every pod start would otherwise take the
// index's write lock and pay for two fdatasyncs, for a value that is only
// advice to people and gc.
func (s *Store) Touch(id digest.Digest) error {
	p := s.usedPath(id)
	now := time.Now()
	if err := os.Chtimes(p, now, now); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	return f.Close()
}

func (s *Store) usedPath(id digest.Digest) string {
	return filepath.Join(s.dir, "used", id.Encoded())
}

// lastUsed fills img.LastUsed from its Touch file.
func (s *Store) lastUsed(img *Image) {
	if fi, err := os.Stat(s.usedPath(img.ID)); err == nil {
		img.LastUsed = fi.ModTime().UTC()
	}
}

// NormalizeName adds ":latest" to a name without a tag or digest.
func NormalizeName(n string) string {
	if strings.Contains(n, "@") {
		return n
	}
	last := n[strings.LastIndex(n, "/")+1:]
	if strings.Contains(last, ":") {
		return n
	}
	return n + ":latest"
}

func isHex(s string) bool {
	for _, c := range s {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return false
		}
	}
	return true
}
