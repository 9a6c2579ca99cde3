package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
	"golang.org/x/sys/unix"
)

// The index is a cache of the image records, which are also kept one file
// each under images/records (written after the index commits). A corrupt
// index (a disk that lied, a hand that edited it) is moved aside and
// rebuilt from them, so a damaged index.db loses no image and no name.

// ErrIndexCorrupt marks a damaged index.db.
var ErrIndexCorrupt = errors.New("image index is corrupt")

func (s *Store) recordPath(id digest.Digest) string {
	return filepath.Join(s.dir, "records", id.Encoded()+".json")
}

func (s *Store) writeRecord(img *Image) error {
	b, err := json.Marshal(img)
	if err != nil {
		return err
	}
	p := s.recordPath(img.ID)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write image record: %w", err)
	}
	return os.Rename(tmp, p)
}

// guard turns a panic of bbolt reading a damaged page into ErrIndexCorrupt.
func guard(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrIndexCorrupt, r)
		}
	}()
	return fn()
}

func corrupt(err error) bool {
	return errors.Is(err, berrors.ErrInvalid) || errors.Is(err, berrors.ErrChecksum) ||
		errors.Is(err, berrors.ErrVersionMismatch) || errors.Is(err, ErrIndexCorrupt)
}

// openIndex opens index.db, rebuilding it first if it is corrupt. Damaged
// meta pages show here; a damaged page deeper in shows as a panic inside a
// transaction, which guard turns into ErrIndexCorrupt and withIndex
// answers the same way. No full check runs on the way: every pod start
// opens the index.
func (s *Store) openIndex(readOnly bool) (*bolt.DB, error) {
	open := func() (*bolt.DB, error) {
		return bolt.Open(s.dbPath(), 0o600, &bolt.Options{Timeout: 30 * time.Second, ReadOnly: readOnly})
	}
	db, err := open()
	if err == nil {
		return db, nil
	}
	if !corrupt(err) {
		return nil, fmt.Errorf("open image index %s: %w", s.dbPath(), err)
	}
	if rerr := s.rebuildIndex(err); rerr != nil {
		return nil, fmt.Errorf("open image index %s: %v; rebuilding it: %w", s.dbPath(), err, rerr)
	}
	db, err = open()
	if err != nil {
		return nil, fmt.Errorf("open rebuilt image index %s: %w", s.dbPath(), err)
	}
	return db, nil
}

// rebuildIndex moves a corrupt index aside and makes a new one from the
// records. One process does it; others wait and then find it done.
func (s *Store) rebuildIndex(cause error) error {
	lf, err := os.OpenFile(filepath.Join(s.dir, "index.rebuild"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer lf.Close()
	if err := unix.Flock(int(lf.Fd()), unix.LOCK_EX); err != nil {
		return err
	}
	if db, err := bolt.Open(s.dbPath(), 0o600, &bolt.Options{Timeout: 30 * time.Second, ReadOnly: true}); err == nil {
		cerr := guard(func() error { return db.View(checkTx) })
		db.Close()
		if cerr == nil {
			return nil // rebuilt by another process meanwhile
		}
	}
	aside := fmt.Sprintf("%s.corrupt-%d", s.dbPath(), time.Now().UnixNano())
	if err := os.Rename(s.dbPath(), aside); err != nil {
		return err
	}
	recs, err := s.readRecords()
	if err != nil {
		return err
	}
	db, err := bolt.Open(s.dbPath(), 0o600, &bolt.Options{Timeout: 30 * time.Second})
	if err != nil {
		return err
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		images, err := tx.CreateBucketIfNotExists(bucketImages)
		if err != nil {
			return err
		}
		names, err := tx.CreateBucketIfNotExists(bucketNames)
		if err != nil {
			return err
		}
		for _, img := range recs {
			v, _ := json.Marshal(img)
			if err := images.Put([]byte(img.ID), v); err != nil {
				return err
			}
			for _, n := range img.Names {
				if err := names.Put([]byte(n), []byte(img.ID)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "orbit: the image index was corrupt (%v); rebuilt it from the records of %d images; the damaged file is %s\n", cause, len(recs), aside)
	return nil
}

// readRecords reads the image records, oldest first, so that a name two
// records claim (a crash between a retag's index commit and its record
// writes) goes to the newer image, as the index had it.
func (s *Store) readRecords() ([]*Image, error) {
	ents, err := os.ReadDir(filepath.Join(s.dir, "records"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	var out []*Image
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(s.dir, "records", e.Name()))
		if err != nil {
			return nil, err
		}
		var img Image
		if err := json.Unmarshal(b, &img); err != nil || img.ID.Validate() != nil {
			continue // a torn record: its image's blobs stay for gc to judge
		}
		if !s.HasBlob(img.ID) {
			continue
		}
		out = append(out, &img)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Imported.Before(out[j].Imported) })
	return out, nil
}

// checkTx runs bbolt's consistency check, reading it to the end (it runs
// beside the transaction and must finish before it closes).
func checkTx(tx *bolt.Tx) error {
	var first error
	for err := range tx.Check() {
		if first == nil {
			first = fmt.Errorf("%w: %v", ErrIndexCorrupt, err)
		}
	}
	return first
}

// withIndex runs one transaction through open and tx, and if it finds the
// index damaged, rebuilds it and runs the transaction once more.
func (s *Store) withIndex(readOnly bool, tx func(db *bolt.DB) error) error {
	for attempt := 0; ; attempt++ {
		db, err := s.openIndex(readOnly)
		if err != nil {
			return err
		}
		err = guard(func() error { return tx(db) })
		db.Close()
		if attempt > 0 || !errors.Is(err, ErrIndexCorrupt) {
			return err
		}
		if rerr := s.rebuildIndex(err); rerr != nil {
			return fmt.Errorf("%v; rebuilding the index: %w", err, rerr)
		}
	}
}
