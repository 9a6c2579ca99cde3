package aci

import (
	"fmt"
	"io"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/orbit-pods/orbit/image/unpack"
)

// FileLayer is a v1.Layer whose blob is a file and whose digests are known
// already: an ACI's converted rootfs, or a layer the store holds (a
// dependency's), which the store then finds present and does not read.
type FileLayer struct {
	Path      string
	Digest    v1.Hash
	DiffID    v1.Hash
	Size      int64
	MediaType types.MediaType
}

// Layer returns l as a v1.Layer.
func (l *FileLayer) Layer() v1.Layer { return fileLayer{l} }

type fileLayer struct{ l *FileLayer }

func (f fileLayer) Digest() (v1.Hash, error)            { return f.l.Digest, nil }
func (f fileLayer) DiffID() (v1.Hash, error)            { return f.l.DiffID, nil }
func (f fileLayer) Size() (int64, error)                { return f.l.Size, nil }
func (f fileLayer) MediaType() (types.MediaType, error) { return f.l.MediaType, nil }
func (f fileLayer) Compressed() (io.ReadCloser, error)  { return os.Open(f.l.Path) }

func (f fileLayer) Uncompressed() (io.ReadCloser, error) {
	file, err := os.Open(f.l.Path)
	if err != nil {
		return nil, err
	}
	dec, err := unpack.Decompress(file)
	if err != nil {
		file.Close()
		return nil, fmt.Errorf("layer %s: %w", f.l.Digest, err)
	}
	return readCloser{dec, func() error { dec.Close(); return file.Close() }}, nil
}

type readCloser struct {
	io.Reader
	close func() error
}

func (r readCloser) Close() error { return r.close() }
