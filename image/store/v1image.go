package store

import (
	"fmt"
	"io"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// V1Image reads a stored image back as a go-containerregistry image (for
// export), its blobs served from the store as they were fetched.
func (s *Store) V1Image(img *Image) (v1.Image, error) {
	raw, err := s.ReadBlob(img.ID)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", img.ID, err)
	}
	return partial.CompressedToImage(&storedImage{s: s, img: img, manifest: raw})
}

type storedImage struct {
	s        *Store
	img      *Image
	manifest []byte
}

func (si *storedImage) RawManifest() ([]byte, error) { return si.manifest, nil }

func (si *storedImage) MediaType() (types.MediaType, error) {
	return types.MediaType(si.img.MediaType), nil
}

func (si *storedImage) RawConfigFile() ([]byte, error) { return si.s.ReadBlob(si.img.Config) }

func (si *storedImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	for _, l := range si.img.Layers {
		if l.Digest.String() == h.String() {
			return &storedLayer{s: si.s, l: l}, nil
		}
	}
	return nil, fmt.Errorf("layer %s not in image %s", h, si.img.ID)
}

type storedLayer struct {
	s *Store
	l Layer
}

func (sl *storedLayer) Digest() (v1.Hash, error) { return v1.NewHash(sl.l.Digest.String()) }
func (sl *storedLayer) Size() (int64, error)     { return sl.l.Size, nil }
func (sl *storedLayer) MediaType() (types.MediaType, error) {
	return types.MediaType(sl.l.MediaType), nil
}

func (sl *storedLayer) Compressed() (io.ReadCloser, error) {
	f, err := os.Open(sl.s.BlobPath(sl.l.Digest))
	if err != nil {
		return nil, fmt.Errorf("layer %s: %w", sl.l.Digest, err)
	}
	return f, nil
}
