package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Temp items (a blob being written, a layer being extracted) are each held
// under an exclusive flock by the process working on them, so gc removes
// only litter: items whose process died. The lock is taken right after the
// item is made; a gc that removed the item in between is noticed (the path
// no longer names the locked inode) and the item is made again.
//
// Blobs and layers committed by an import are unreferenced until the import
// records its image; imports hold the store lock shared and gc holds it
// exclusive, so gc never takes them for garbage.

// createTempFile makes and locks a temp file.
func (s *Store) createTempFile(pattern string) (*os.File, error) {
	for {
		f, err := os.CreateTemp(s.tmpDir(), pattern)
		if err != nil {
			return nil, err
		}
		ok, err := lockStillThere(f)
		if err != nil {
			f.Close()
			os.Remove(f.Name())
			return nil, err
		}
		if ok {
			return f, nil
		}
		f.Close()
	}
}

// tempDir makes and locks a temp directory; closing the returned file
// releases the lock.
func (s *Store) tempDir(pattern string) (string, *os.File, error) {
	for {
		dir, err := os.MkdirTemp(s.tmpDir(), pattern)
		if err != nil {
			return "", nil, err
		}
		f, err := os.Open(dir)
		if errors.Is(err, os.ErrNotExist) {
			continue // collected before we could lock it
		}
		if err != nil {
			os.Remove(dir)
			return "", nil, err
		}
		ok, err := lockStillThere(f)
		if err != nil {
			f.Close()
			os.Remove(dir)
			return "", nil, err
		}
		if ok {
			return dir, f, nil
		}
		f.Close()
	}
}

// lockStillThere takes an exclusive flock on f and reports whether f's path
// still names it.
func lockStillThere(f *os.File) (bool, error) {
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		return false, fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	a, err := f.Stat()
	if err != nil {
		return false, err
	}
	b, err := os.Lstat(f.Name())
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return os.SameFile(a, b), nil
}

// lockStore takes the store lock, shared (imports) or exclusive (gc,
// removal). Closing the file releases it.
func (s *Store) lockStore(exclusive bool) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(s.dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open store lock: %w", err)
	}
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	if err := unix.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock image store: %w", err)
	}
	return f, nil
}

// tryLock takes an exclusive flock on path without waiting. It returns
// nil, nil when another process holds it.
func tryLock(path string) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, nil
		}
		return nil, err
	}
	return f, nil
}

// TempDir makes a private directory in the store's tmp, on the store's
// filesystem, held against gc until release, which also removes it.
func (s *Store) TempDir(pattern string) (dir string, release func(), err error) {
	dir, lock, err := s.tempDir(pattern)
	if err != nil {
		return "", nil, err
	}
	return dir, func() {
		os.RemoveAll(dir)
		lock.Close()
	}, nil
}
