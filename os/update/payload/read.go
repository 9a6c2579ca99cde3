package payload

import (
	"archive/tar"
	"bufio"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/gzip"
)

// ErrUnsigned is returned for a payload with no signature, or one no
// trusted key made.
var ErrUnsigned = errors.New("payload is not signed by a trusted key")

// ErrCorrupt is returned when a payload's bytes do not match its signed
// manifest.
var ErrCorrupt = errors.New("payload does not match its signed manifest")

// maxManifest bounds what is read before the signature is checked.
const maxManifest = 64 << 10

// Reader reads a payload, verifying as it goes.
type Reader struct {
	Manifest *Manifest
	tr       *tar.Reader
	next     int
}

// NewReader reads and verifies the manifest at the head of a payload. Only
// when it returns without error has the manifest been signed by one of keys.
func NewReader(r io.Reader, keys []ed25519.PublicKey) (*Reader, error) {
	r, err := decompress(r)
	if err != nil {
		return nil, err
	}
	tr := tar.NewReader(r)
	mb, err := member(tr, ManifestName, maxManifest)
	if err != nil {
		return nil, err
	}
	sb, err := member(tr, SignatureName, 1024)
	if err != nil {
		if errors.Is(err, errMissing) {
			return nil, fmt.Errorf("%w: no %s after the manifest", ErrUnsigned, SignatureName)
		}
		return nil, err
	}
	sig, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(sb)))
	if err != nil || len(sig) != ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: %s is not a base64 Ed25519 signature", ErrUnsigned, SignatureName)
	}
	ok := false
	for _, k := range keys {
		if ed25519.Verify(k, mb, sig) {
			ok = true
			break
		}
	}
	if !ok {
		return nil, fmt.Errorf("%w: the signature matches none of %d trusted keys", ErrUnsigned, len(keys))
	}
	m, err := parseManifest(mb)
	if err != nil {
		return nil, fmt.Errorf("signed manifest: %w", err)
	}
	return &Reader{Manifest: m, tr: tr}, nil
}

var errMissing = errors.New("missing member")

func member(tr *tar.Reader, name string, max int64) ([]byte, error) {
	h, err := tr.Next()
	if err == io.EOF {
		return nil, fmt.Errorf("%w: payload ends before %s", errMissing, name)
	}
	if err != nil {
		return nil, fmt.Errorf("read payload: %w (not a payload?)", err)
	}
	if h.Name != name {
		return nil, fmt.Errorf("%w: payload member %q where %s belongs", errMissing, h.Name, name)
	}
	if h.Size > max {
		return nil, fmt.Errorf("payload member %s is %d bytes, more than %d", name, h.Size, max)
	}
	return io.ReadAll(tr)
}

// Next returns the next file of the manifest and a reader of its content.
// The reader returns ErrCorrupt instead of io.EOF when the content's size or
// digest differs from the manifest's. io.EOF after the last file.
func (r *Reader) Next() (File, io.Reader, error) {
	if r.next >= len(r.Manifest.Files) {
		return File{}, nil, io.EOF
	}
	f := r.Manifest.Files[r.next]
	r.next++
	h, err := r.tr.Next()
	if err != nil {
		return File{}, nil, fmt.Errorf("%w: payload ends before %s: %v", ErrCorrupt, f.Name, err)
	}
	if h.Name != f.Name || h.Size != f.Size || h.Typeflag != tar.TypeReg {
		return File{}, nil, fmt.Errorf("%w: member %q (%d bytes) where %s (%d bytes) belongs", ErrCorrupt, h.Name, h.Size, f.Name, f.Size)
	}
	return f, &verifier{r: r.tr, f: f, h: sha256.New()}, nil
}

type verifier struct {
	r io.Reader
	f File
	h hash.Hash
	n int64
}

func (v *verifier) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if err == io.EOF {
		if v.n != v.f.Size {
			return n, fmt.Errorf("%w: %s is %d bytes, manifest says %d", ErrCorrupt, v.f.Name, v.n, v.f.Size)
		}
		if got := hex.EncodeToString(v.h.Sum(nil)); got != v.f.SHA256 {
			return n, fmt.Errorf("%w: %s has sha256 %s, manifest says %s", ErrCorrupt, v.f.Name, got, v.f.SHA256)
		}
	} else if err != nil {
		err = fmt.Errorf("read %s from payload: %w", v.f.Name, err)
	}
	return n, err
}

// Verify reads a whole payload and checks everything, writing nothing.
func Verify(r io.Reader, keys []ed25519.PublicKey) (*Manifest, error) {
	pr, err := NewReader(r, keys)
	if err != nil {
		return nil, err
	}
	for {
		_, fr, err := pr.Next()
		if err == io.EOF {
			return pr.Manifest, nil
		}
		if err != nil {
			return nil, err
		}
		if _, err := io.Copy(io.Discard, fr); err != nil {
			return nil, err
		}
	}
}

// ReadManifest returns a payload's manifest after checking its signature,
// without reading the files: what a server needs to list a payload.
func ReadManifest(r io.Reader, keys []ed25519.PublicKey) (*Manifest, error) {
	pr, err := NewReader(r, keys)
	if err != nil {
		return nil, err
	}
	return pr.Manifest, nil
}

// PeekManifest returns a payload's manifest without checking its
// signature: for a server listing what it serves, never for trusting it.
func PeekManifest(r io.Reader) (*Manifest, error) {
	r, err := decompress(r)
	if err != nil {
		return nil, err
	}
	mb, err := member(tar.NewReader(r), ManifestName, maxManifest)
	if err != nil {
		return nil, err
	}
	return parseManifest(mb)
}

// decompress returns r, or a gzip reader of it when it starts with gzip's
// magic number.
func decompress(r io.Reader) (io.Reader, error) {
	br := bufio.NewReader(r)
	magic, err := br.Peek(2)
	if err != nil {
		return nil, fmt.Errorf("read payload: %w", err)
	}
	if magic[0] != 0x1f || magic[1] != 0x8b {
		return br, nil
	}
	zr, err := gzip.NewReader(br)
	if err != nil {
		return nil, fmt.Errorf("%w: gzip: %v", ErrCorrupt, err)
	}
	zr.Multistream(false)
	return gzipErrors{zr}, nil
}

// gzipErrors reports a damaged compressed stream as ErrCorrupt.
type gzipErrors struct{ r io.Reader }

func (g gzipErrors) Read(p []byte) (int, error) {
	n, err := g.r.Read(p)
	var ce flate.CorruptInputError
	if errors.Is(err, gzip.ErrChecksum) || errors.Is(err, gzip.ErrHeader) || errors.As(err, &ce) {
		err = fmt.Errorf("%w: gzip: %v", ErrCorrupt, err)
	}
	return n, err
}
