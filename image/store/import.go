package store

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/orbit-pods/orbit/image/unpack"
	"github.com/orbit-pods/orbit/internal/faultpoint"
)

// Docker's media types, accepted alongside the OCI ones.
const (
	dockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	dockerConfig   = "application/vnd.docker.container.image.v1+json"
)

// ImportOptions tune Import.
type ImportOptions struct {
	Unpack unpack.Options
	// Parallel is how many layers are fetched and extracted at once.
	Parallel int
	// Progress, when set, wraps each layer blob's stream as it is read
	// (fetched and unpacked in one pass), for progress bars; Import closes
	// what it returns when done with the layer, whether it succeeded or not.
	Progress func(l Layer, r io.Reader) io.ReadCloser
}

// Import stores src under names: verifies and commits its blobs, extracts
// each layer not yet present, and records it. Nothing of it is visible by
// name until everything is in place.
func (s *Store) Import(ctx context.Context, src v1.Image, names []string, opts ImportOptions) (*Image, error) {
	lock, err := s.lockStore(false)
	if err != nil {
		return nil, err
	}
	defer lock.Close()
	rawManifest, err := src.RawManifest()
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	id := digest.FromBytes(rawManifest)
	var m ocispec.Manifest
	if err := json.Unmarshal(rawManifest, &m); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", id, err)
	}
	mt := m.MediaType
	if mt == "" {
		if t, err := src.MediaType(); err == nil {
			mt = string(t)
		}
	}
	if err := checkManifest(&m, mt); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", id, err)
	}
	rawConfig, err := src.RawConfigFile()
	if err != nil {
		return nil, fmt.Errorf("read config %s: %w", m.Config.Digest, err)
	}
	if got := digest.FromBytes(rawConfig); got != m.Config.Digest {
		return nil, fmt.Errorf("config: content hashes to %s, manifest says %s: %w", got, m.Config.Digest, ErrDigestMismatch)
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(rawConfig, &cfg); err != nil {
		return nil, fmt.Errorf("config %s: %w", m.Config.Digest, err)
	}
	if cfg.RootFS.Type != "layers" {
		return nil, fmt.Errorf("config %s: rootfs type %q, want \"layers\"", m.Config.Digest, cfg.RootFS.Type)
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return nil, fmt.Errorf("config %s lists %d diff IDs for the manifest's %d layers", m.Config.Digest, len(cfg.RootFS.DiffIDs), len(m.Layers))
	}
	for _, d := range cfg.RootFS.DiffIDs {
		if err := d.Validate(); err != nil {
			return nil, fmt.Errorf("config %s: diff ID %q: %w", m.Config.Digest, d, err)
		}
	}
	chains := identity.ChainIDs(append([]digest.Digest(nil), cfg.RootFS.DiffIDs...))

	img := &Image{
		ID:        id,
		Names:     names,
		MediaType: mt,
		Config:    m.Config.Digest,
		Imported:  time.Now().UTC(),
		Size:      int64(len(rawManifest)) + int64(len(rawConfig)),
	}
	for i, l := range m.Layers {
		img.Layers = append(img.Layers, Layer{
			Digest: l.Digest, DiffID: cfg.RootFS.DiffIDs[i], ChainID: chains[i],
			MediaType: l.MediaType, Size: l.Size,
		})
		img.Size += l.Size
	}

	par := opts.Parallel
	if par <= 0 {
		par = 3
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(par)
	for _, l := range img.Layers {
		if s.HasLayer(l.ChainID) && s.HasBlob(l.Digest) {
			continue
		}
		g.Go(func() error {
			h, err := v1.NewHash(l.Digest.String())
			if err != nil {
				return fmt.Errorf("layer %s: %w", l.Digest, err)
			}
			layer, err := src.LayerByDigest(h)
			if err != nil {
				return fmt.Errorf("layer %s: %w", l.Digest, err)
			}
			if err := s.storeLayer(gctx, layer, l, opts); err != nil {
				return fmt.Errorf("layer %s: %w", l.Digest, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	faultpoint.Hit("fetch.layers-stored")
	if err := s.writeBytes(m.Config.Digest, rawConfig); err != nil {
		return nil, err
	}
	if err := s.writeBytes(id, rawManifest); err != nil {
		return nil, err
	}
	faultpoint.Hit("fetch.before-record")
	if err := s.record(img); err != nil {
		return nil, fmt.Errorf("record image %s: %w", id, err)
	}
	return img, nil
}

func checkManifest(m *ocispec.Manifest, mediaType string) error {
	switch mediaType {
	case ocispec.MediaTypeImageManifest, dockerManifest:
	default:
		return fmt.Errorf("unsupported manifest media type %q", mediaType)
	}
	if m.SchemaVersion != 2 {
		return fmt.Errorf("schemaVersion %d, want 2", m.SchemaVersion)
	}
	switch m.Config.MediaType {
	case ocispec.MediaTypeImageConfig, dockerConfig:
	default:
		return fmt.Errorf("unsupported config media type %q", m.Config.MediaType)
	}
	if err := m.Config.Digest.Validate(); err != nil {
		return fmt.Errorf("config digest %q: %w", m.Config.Digest, err)
	}
	for _, l := range m.Layers {
		if err := l.Digest.Validate(); err != nil {
			return fmt.Errorf("layer digest %q: %w", l.Digest, err)
		}
		if l.Size < 0 {
			return fmt.Errorf("layer %s: negative size", l.Digest)
		}
	}
	return nil
}

func (s *Store) writeBytes(d digest.Digest, b []byte) error {
	if s.HasBlob(d) {
		return nil
	}
	w, err := s.NewBlobWriter(d)
	if err != nil {
		return err
	}
	defer w.Discard()
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("write blob %s: %w", d, err)
	}
	return w.Commit()
}

// storeLayer streams one layer blob once: into its blob file and, through
// the decompressor, into a fresh directory; both are verified (compressed
// digest and diff ID) before either is committed.
func (s *Store) storeLayer(ctx context.Context, src v1.Layer, l Layer, opts ImportOptions) error {
	rc, err := src.Compressed()
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer rc.Close()
	var in io.Reader = rc
	if opts.Progress != nil {
		p := opts.Progress(l, rc)
		defer p.Close()
		in = p
	}

	bw, err := s.NewBlobWriter(l.Digest)
	if err != nil {
		return err
	}
	defer bw.Discard()
	if l.Size > 0 {
		// A source that sends more than the manifest says is cut off one
		// byte past it, and refused below.
		in = io.LimitReader(in, l.Size+1)
	}
	raw := io.TeeReader(in, bw)
	// finish reads the rest of the blob and checks its digest. A source
	// that verifies too (go-containerregistry's remote layers) fails the
	// last read in its own words; a blob of full length that hashes wrong
	// is reported in the store's.
	finish := func() error {
		_, rerr := io.Copy(io.Discard, raw)
		if rerr == nil && l.Size > 0 && bw.Size() != l.Size {
			return fmt.Errorf("blob is %d bytes, the manifest says %d: %w", bw.Size(), l.Size, ErrSizeMismatch)
		}
		if verr := bw.Verify(); verr != nil && (rerr == nil || bw.Size() == l.Size) {
			return verr
		}
		if rerr != nil {
			return fmt.Errorf("read: %w", rerr)
		}
		return nil
	}

	if s.HasLayer(l.ChainID) {
		if err := finish(); err != nil {
			return err
		}
		return bw.Commit()
	}

	tmp, lock, err := s.tempDir("layer-")
	if err != nil {
		return fmt.Errorf("create layer directory: %w", err)
	}
	defer lock.Close()
	defer os.RemoveAll(tmp)

	// A corrupt blob usually shows first as a broken stream (bad gzip
	// checksum, broken tar); name the real cause when the digest says so.
	cause := func(err error) error {
		if rerr := finish(); rerr != nil {
			return rerr
		}
		return err
	}
	dec, err := unpack.Decompress(raw)
	if err != nil {
		return cause(err)
	}
	defer dec.Close()
	diff := sha256.New()
	st, err := unpack.Apply(ctx, io.TeeReader(dec, diff), tmp, opts.Unpack)
	if err != nil {
		return cause(fmt.Errorf("unpack: %w", err))
	}
	// Hash what the tar reader left unread (padding, trailer) and the rest
	// of the compressed stream.
	if _, err := io.Copy(diff, dec); err != nil {
		return cause(fmt.Errorf("read: %w", err))
	}
	if err := finish(); err != nil {
		return err
	}
	if got := digest.NewDigest(digest.SHA256, diff); got != l.DiffID {
		return fmt.Errorf("uncompressed content hashes to %s, config says %s: %w", got, l.DiffID, ErrDigestMismatch)
	}
	faultpoint.Hit("fetch.layer-unpacked")
	if err := bw.Commit(); err != nil {
		return err
	}
	faultpoint.Hit("fetch.blob-committed")
	if !st.RootMeta {
		// MkdirTemp made it 0700; a layer that does not say gets the
		// usual mode of a root directory.
		if err := os.Chmod(tmp, 0o755); err != nil {
			return err
		}
	}
	return s.commitLayer(tmp, l.ChainID)
}

// commitLayer makes an extracted directory the layer for chain ID c. The
// extracted files are flushed first (one syncfs, not an fsync per file), so
// a layer that is visible is complete even after a power cut.
func (s *Store) commitLayer(tmp string, c digest.Digest) error {
	f, err := os.Open(tmp)
	if err != nil {
		return err
	}
	err = unix.Syncfs(int(f.Fd()))
	f.Close()
	if err != nil {
		return fmt.Errorf("sync layer: %w", err)
	}
	dst := s.LayerPath(c)
	if err := os.Rename(tmp, dst); err != nil {
		if errors.Is(err, os.ErrExist) || errors.Is(err, unix.ENOTEMPTY) {
			return nil // another process committed it first
		}
		return fmt.Errorf("commit layer %s: %w", c, err)
	}
	return syncDir(filepath.Dir(dst))
}
