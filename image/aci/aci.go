// Package aci turns appc App Container Images into images the store keeps.
//
// An ACI is a tar (gzip, bzip2, xz or none) of a `manifest` (an appc image
// manifest) and a `rootfs/` tree. Read streams it once: the manifest is
// parsed and checked, and every rootfs/ entry is re-rooted at / and written
// to a gzip layer file, hashing both the layer (its digest and diff ID) and
// the whole uncompressed ACI (the appc image ID) on the way. Image then makes
// a go-containerregistry v1.Image of that layer over the layers of the
// image's dependencies, with an OCI config made from the appc manifest, so
// the store imports an ACI like any other image.
//
// ACIs are untrusted input: an entry outside manifest and rootfs/, a name or
// hard link target with "..", an overlay whiteout name (appc has no
// deletions) or a manifest path with ".." is refused, and the whole ACI with
// it. Devices, symlink escapes and the like are refused later by
// image/unpack, which extracts the layer.
package aci

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/bzip2"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path"
	"strings"

	"github.com/appc/spec/schema"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
	"github.com/ulikunitz/xz"
)

// ErrInvalid is wrapped by every refusal of a malformed or hostile ACI.
var ErrInvalid = errors.New("invalid ACI")

// maxManifest bounds the manifest read into memory.
const maxManifest = 1 << 20

// ACI is an ACI as read: its manifest and its rootfs as a layer file.
type ACI struct {
	Manifest *schema.ImageManifest
	// RawManifest is the manifest as the ACI holds it.
	RawManifest []byte
	// ID is the appc image ID: "sha512-" and the hex SHA-512 of the
	// uncompressed ACI.
	ID string
	// Layer is the rootfs, re-rooted at /, as a gzip layer in a file that
	// Close removes.
	Layer *FileLayer
}

// Close removes the layer file.
func (a *ACI) Close() error {
	if a.Layer == nil {
		return nil
	}
	return os.Remove(a.Layer.Path)
}

// Read reads the ACI in r, writing its layer to a new file in tmpDir.
func Read(ctx context.Context, r io.Reader, tmpDir string) (_ *ACI, err error) {
	dec, err := decompress(r)
	if err != nil {
		return nil, err
	}
	defer dec.Close()
	idHash := sha512.New()
	tr := tar.NewReader(io.TeeReader(dec, idHash))

	f, err := os.CreateTemp(tmpDir, "aci-layer-")
	if err != nil {
		return nil, fmt.Errorf("create layer file: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	digestHash, diffHash := sha256.New(), sha256.New()
	cw := &countWriter{w: io.MultiWriter(f, digestHash)}
	zw := gzip.NewWriter(cw)
	tw := tar.NewWriter(io.MultiWriter(zw, diffHash))

	a := &ACI{}
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read ACI: %w", err)
		}
		if err := a.entry(tr, hdr, tw); err != nil {
			return nil, err
		}
	}
	if a.Manifest == nil {
		return nil, fmt.Errorf("%w: no manifest", ErrInvalid)
	}
	// The image ID covers the tar's trailer too.
	if _, err := io.Copy(idHash, dec); err != nil {
		return nil, fmt.Errorf("read ACI: %w", err)
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("write layer: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("write layer: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("write layer: %w", err)
	}
	a.ID = "sha512-" + hex.EncodeToString(idHash.Sum(nil))
	a.Layer = &FileLayer{
		Path:      f.Name(),
		Digest:    hashOf(digestHash),
		DiffID:    hashOf(diffHash),
		Size:      cw.n,
		MediaType: types.OCILayer,
	}
	return a, nil
}

func hashOf(h hash.Hash) v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
}

// entry handles one tar entry of the ACI: the manifest is kept, a rootfs
// entry is written re-rooted, anything else is refused.
func (a *ACI) entry(tr *tar.Reader, hdr *tar.Header, tw *tar.Writer) error {
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil
	}
	name, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	switch {
	case name == "manifest":
		if a.Manifest != nil {
			return fmt.Errorf("%w: two manifests", ErrInvalid)
		}
		if hdr.Typeflag != tar.TypeReg {
			return fmt.Errorf("%w: manifest is not a regular file", ErrInvalid)
		}
		raw, err := io.ReadAll(io.LimitReader(tr, maxManifest+1))
		if err != nil {
			return fmt.Errorf("read manifest: %w", err)
		}
		if len(raw) > maxManifest {
			return fmt.Errorf("%w: manifest larger than %d bytes", ErrInvalid, maxManifest)
		}
		m, err := ParseManifest(raw)
		if err != nil {
			return err
		}
		a.Manifest, a.RawManifest = m, raw
		return nil
	case name == "rootfs":
		if hdr.Typeflag != tar.TypeDir {
			return fmt.Errorf("%w: rootfs is not a directory", ErrInvalid)
		}
		return writeEntry(tw, hdr, "./", "", nil)
	case strings.HasPrefix(name, "rootfs/"):
		rel := strings.TrimPrefix(name, "rootfs/")
		if strings.HasPrefix(path.Base(rel), ".wh.") {
			return fmt.Errorf("%w: entry %q: appc images have no whiteouts", ErrInvalid, hdr.Name)
		}
		if hdr.Typeflag == tar.TypeDir {
			rel += "/"
		}
		link := hdr.Linkname
		if hdr.Typeflag == tar.TypeLink {
			// Hard link targets are names in the same archive, so they
			// move with the entries; one outside rootfs/ is refused.
			l, err := cleanName(link)
			if err != nil || !strings.HasPrefix(l, "rootfs/") {
				return fmt.Errorf("%w: entry %q: hard link to %q outside rootfs/", ErrInvalid, hdr.Name, hdr.Linkname)
			}
			link = strings.TrimPrefix(l, "rootfs/")
		}
		return writeEntry(tw, hdr, rel, link, tr)
	default:
		return fmt.Errorf("%w: entry %q is neither manifest nor under rootfs/", ErrInvalid, hdr.Name)
	}
}

// cleanName refuses absolute names and names with "..", and cleans the rest
// ("./rootfs/x/" is "rootfs/x").
func cleanName(n string) (string, error) {
	if strings.HasPrefix(n, "/") {
		return "", fmt.Errorf("%w: entry %q: absolute path", ErrInvalid, n)
	}
	for _, part := range strings.Split(n, "/") {
		if part == ".." {
			return "", fmt.Errorf("%w: entry %q: \"..\" in path", ErrInvalid, n)
		}
	}
	return path.Clean(n), nil
}

func writeEntry(tw *tar.Writer, hdr *tar.Header, name, link string, body io.Reader) error {
	h := *hdr
	h.Name, h.Linkname = name, link
	// Keep PAX for xattrs; the writer takes names from the fields, not
	// from path records, so the rename holds.
	if len(h.PAXRecords) > 0 {
		h.Format = tar.FormatPAX
	} else {
		h.Format = tar.FormatUnknown
	}
	if err := tw.WriteHeader(&h); err != nil {
		return fmt.Errorf("write layer entry %q: %w", name, err)
	}
	if body != nil && h.Typeflag == tar.TypeReg {
		if _, err := io.Copy(tw, body); err != nil {
			return fmt.Errorf("write layer entry %q: %w", name, err)
		}
	}
	return nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// decompress recognises an ACI's compression by its magic number.
func decompress(r io.Reader) (io.ReadCloser, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic, err := br.Peek(6)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read ACI: %w", err)
	}
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		z, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("read ACI: gzip: %w", err)
		}
		return z, nil
	case bytes.HasPrefix(magic, []byte("BZh")):
		return io.NopCloser(bzip2.NewReader(br)), nil
	case bytes.HasPrefix(magic, []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}):
		z, err := xz.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("read ACI: xz: %w", err)
		}
		return io.NopCloser(z), nil
	}
	return io.NopCloser(br), nil
}
