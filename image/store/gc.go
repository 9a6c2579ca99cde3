package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	digest "github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

// GCOptions tune GC.
type GCOptions struct {
	// GracePeriod is how old an unlocked item in tmp must be before it is
	// taken for litter.
	GracePeriod time.Duration
	// Log receives one line per item removed.
	Log io.Writer
}

// GC removes blobs and layers that no image references, and the litter of
// processes that died while fetching: items in tmp older than the grace
// period that no live process holds locked.
func (s *Store) GC(ctx context.Context, o GCOptions) error {
	lock, err := s.lockStore(true)
	if err != nil {
		return err
	}
	defer lock.Close()
	log := o.Log
	if log == nil {
		log = io.Discard
	}
	if err := s.sweepUnreferenced(ctx, log); err != nil {
		return err
	}
	return s.sweepTemp(ctx, o.GracePeriod, log)
}

// Remove drops the images with the given IDs from the index, then the
// blobs and layers no other image uses.
func (s *Store) Remove(ctx context.Context, ids []digest.Digest) error {
	lock, err := s.lockStore(true)
	if err != nil {
		return err
	}
	defer lock.Close()
	err = s.update(func(tx *bolt.Tx) error {
		for _, id := range ids {
			img, err := getImage(tx, id)
			if err != nil {
				return err
			}
			for _, n := range img.Names {
				if err := tx.Bucket(bucketNames).Delete([]byte(n)); err != nil {
					return err
				}
			}
			if err := tx.Bucket(bucketImages).Delete([]byte(id)); err != nil {
				return err
			}
			_ = os.Remove(s.usedPath(id))
			_ = os.Remove(s.recordPath(id))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("remove images: %w", err)
	}
	return s.sweepUnreferenced(ctx, io.Discard)
}

// sweepUnreferenced needs the store lock held exclusive.
func (s *Store) sweepUnreferenced(ctx context.Context, log io.Writer) error {
	imgs, err := s.List()
	if err != nil {
		return err
	}
	blobs := map[string]bool{}
	layers := map[string]bool{}
	for _, img := range imgs {
		blobs[img.ID.Encoded()] = true
		blobs[img.Config.Encoded()] = true
		for _, l := range img.Layers {
			blobs[l.Digest.Encoded()] = true
			layers[l.ChainID.Encoded()] = true
		}
		for _, d := range s.annotatedBlobs(img) {
			blobs[d.Encoded()] = true
		}
	}
	var errs []error
	ents, err := os.ReadDir(s.blobDir())
	if err != nil {
		return fmt.Errorf("read blobs: %w", err)
	}
	for _, e := range ents {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if blobs[e.Name()] {
			continue
		}
		if err := os.Remove(filepath.Join(s.blobDir(), e.Name())); err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(log, "Removed blob sha256:%s\n", e.Name())
	}
	ents, err = os.ReadDir(s.layerDir())
	if err != nil {
		return fmt.Errorf("read layers: %w", err)
	}
	for _, e := range ents {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if layers[e.Name()] {
			continue
		}
		// Out of sight first, so no half-removed layer is ever visible
		// under its chain ID; a crash leaves it as litter in tmp.
		tmp := filepath.Join(s.tmpDir(), "gc-layer-"+e.Name())
		if err := os.Rename(filepath.Join(s.layerDir(), e.Name()), tmp); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := os.RemoveAll(tmp); err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(log, "Removed layer sha256:%s\n", e.Name())
	}
	return errors.Join(errs...)
}

func (s *Store) sweepTemp(ctx context.Context, grace time.Duration, log io.Writer) error {
	ents, err := os.ReadDir(s.tmpDir())
	if err != nil {
		return fmt.Errorf("read %s: %w", s.tmpDir(), err)
	}
	var errs []error
	for _, e := range ents {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		p := filepath.Join(s.tmpDir(), e.Name())
		fi, err := os.Lstat(p)
		if err != nil || time.Since(fi.ModTime()) < grace {
			continue
		}
		var lock *os.File
		if fi.Mode().IsRegular() || fi.IsDir() {
			lock, err = tryLock(p)
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err == nil && lock == nil {
				continue // a live process works on it
			}
		}
		// Removed while locked, so its maker, if it was just making it,
		// sees it gone and makes another.
		err = os.RemoveAll(p)
		if lock != nil {
			lock.Close()
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(log, "Removed temporary %s\n", e.Name())
	}
	return errors.Join(errs...)
}

// annotatedBlobs are blobs an image's manifest points at by annotation (an
// ACI's original appc manifest): stored with the image, kept with it.
func (s *Store) annotatedBlobs(img *Image) []digest.Digest {
	raw, err := s.ReadBlob(img.ID)
	if err != nil {
		return nil
	}
	var m struct {
		Annotations map[string]string `json:"annotations"`
	}
	if json.Unmarshal(raw, &m) != nil {
		return nil
	}
	var out []digest.Digest
	for _, v := range m.Annotations {
		if d, err := digest.Parse(v); err == nil && d.Algorithm() == digest.SHA256 && s.HasBlob(d) {
			out = append(out, d)
		}
	}
	return out
}
