package source

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Platform is the platform picked from an image index.
var Platform = ocispec.Platform{OS: "linux", Architecture: "amd64"}

const (
	annotationContainerdName = "io.containerd.image.name"
	maxManifestSize          = 4 << 20
)

// layoutImage reads one image of an OCI image layout held in an fs.FS (a
// directory, or an archive read in place).
type layoutImage struct {
	fsys     fs.FS
	manifest []byte
	desc     ocispec.Descriptor
	parsed   ocispec.Manifest
}

func blobPath(d digest.Digest) (string, error) {
	if err := d.Validate(); err != nil {
		return "", fmt.Errorf("digest %q: %w", d, err)
	}
	return path.Join("blobs", d.Algorithm().String(), d.Encoded()), nil
}

// readBlob reads a small blob (index, manifest, config) and verifies it.
func readBlob(fsys fs.FS, d ocispec.Descriptor) ([]byte, error) {
	p, err := blobPath(d.Digest)
	if err != nil {
		return nil, err
	}
	f, err := fsys.Open(p)
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", d.Digest, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxManifestSize+1))
	if err != nil {
		return nil, fmt.Errorf("read blob %s: %w", d.Digest, err)
	}
	if len(b) > maxManifestSize {
		return nil, fmt.Errorf("blob %s: larger than %d bytes", d.Digest, maxManifestSize)
	}
	if d.Size > 0 && int64(len(b)) != d.Size {
		return nil, fmt.Errorf("blob %s: %d bytes, descriptor says %d", d.Digest, len(b), d.Size)
	}
	if got := digest.FromBytes(b); got != d.Digest {
		return nil, fmt.Errorf("blob %s: content hashes to %s", d.Digest, got)
	}
	return b, nil
}

// openLayout picks the image named ref (any image if ref is empty and the
// layout holds one) from the layout in fsys. It returns the image and the
// name the layout gives it.
func openLayout(fsys fs.FS, ref string) (v1.Image, string, error) {
	if b, err := fs.ReadFile(fsys, "oci-layout"); err != nil {
		return nil, "", fmt.Errorf("not an OCI image layout (oci-layout: %w)", err)
	} else {
		var l ocispec.ImageLayout
		if err := json.Unmarshal(b, &l); err != nil || l.Version != ocispec.ImageLayoutVersion {
			return nil, "", fmt.Errorf("oci-layout: unsupported layout version in %q", b)
		}
	}
	b, err := fs.ReadFile(fsys, "index.json")
	if err != nil {
		return nil, "", fmt.Errorf("index.json: %w", err)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, "", fmt.Errorf("index.json: %w", err)
	}
	var cands []ocispec.Descriptor
	for _, d := range idx.Manifests {
		if ref == "" || refName(d) == ref || d.Annotations[ocispec.AnnotationRefName] == ref || d.Digest.String() == ref {
			cands = append(cands, d)
		}
	}
	switch {
	case len(cands) == 0 && ref != "":
		return nil, "", fmt.Errorf("no image named %q in the layout", ref)
	case len(cands) == 0:
		return nil, "", errors.New("the layout holds no image")
	case len(cands) > 1:
		var names []string
		for _, c := range cands {
			names = append(names, refName(c))
		}
		return nil, "", fmt.Errorf("the layout holds %d images (%s): name one", len(cands), strings.Join(names, ", "))
	}
	d := cands[0]
	name := refName(d)
	d, err = pickPlatform(fsys, d, 0)
	if err != nil {
		return nil, "", err
	}
	mb, err := readBlob(fsys, d)
	if err != nil {
		return nil, "", fmt.Errorf("manifest: %w", err)
	}
	li := &layoutImage{fsys: fsys, manifest: mb, desc: d}
	if err := json.Unmarshal(mb, &li.parsed); err != nil {
		return nil, "", fmt.Errorf("manifest %s: %w", d.Digest, err)
	}
	img, err := partial.CompressedToImage(li)
	if err != nil {
		return nil, "", err
	}
	return img, name, nil
}

// refName is the name a layout gives a manifest: containerd's full name
// when present, else the OCI ref.name annotation.
func refName(d ocispec.Descriptor) string {
	if n := d.Annotations[annotationContainerdName]; n != "" {
		return n
	}
	return d.Annotations[ocispec.AnnotationRefName]
}

// pickPlatform descends through image indexes to the manifest for Platform.
func pickPlatform(fsys fs.FS, d ocispec.Descriptor, depth int) (ocispec.Descriptor, error) {
	switch d.MediaType {
	case ocispec.MediaTypeImageManifest, string(types.DockerManifestSchema2):
		return d, nil
	case ocispec.MediaTypeImageIndex, string(types.DockerManifestList):
	default:
		return d, fmt.Errorf("manifest %s: unsupported media type %q", d.Digest, d.MediaType)
	}
	if depth > 4 {
		return d, fmt.Errorf("index %s: indexes nested too deep", d.Digest)
	}
	b, err := readBlob(fsys, d)
	if err != nil {
		return d, fmt.Errorf("index: %w", err)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		return d, fmt.Errorf("index %s: %w", d.Digest, err)
	}
	for _, m := range idx.Manifests {
		if m.Platform == nil || (m.Platform.OS == Platform.OS && m.Platform.Architecture == Platform.Architecture) {
			return pickPlatform(fsys, m, depth+1)
		}
	}
	return d, fmt.Errorf("index %s has no image for %s/%s", d.Digest, Platform.OS, Platform.Architecture)
}

// RawManifest implements partial.CompressedImageCore.
func (li *layoutImage) RawManifest() ([]byte, error) { return li.manifest, nil }

// MediaType implements partial.CompressedImageCore.
func (li *layoutImage) MediaType() (types.MediaType, error) {
	if li.parsed.MediaType != "" {
		return types.MediaType(li.parsed.MediaType), nil
	}
	return types.MediaType(li.desc.MediaType), nil
}

// RawConfigFile implements partial.CompressedImageCore.
func (li *layoutImage) RawConfigFile() ([]byte, error) {
	return readBlob(li.fsys, li.parsed.Config)
}

// LayerByDigest implements partial.CompressedImageCore.
func (li *layoutImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	for _, l := range li.parsed.Layers {
		if l.Digest.String() == h.String() {
			return &layoutLayer{fsys: li.fsys, desc: l}, nil
		}
	}
	if li.parsed.Config.Digest.String() == h.String() {
		return &layoutLayer{fsys: li.fsys, desc: li.parsed.Config}, nil
	}
	return nil, fmt.Errorf("layer %s not in manifest", h)
}

type layoutLayer struct {
	fsys fs.FS
	desc ocispec.Descriptor
}

func (l *layoutLayer) Digest() (v1.Hash, error) { return v1.NewHash(l.desc.Digest.String()) }
func (l *layoutLayer) Size() (int64, error)     { return l.desc.Size, nil }
func (l *layoutLayer) MediaType() (types.MediaType, error) {
	return types.MediaType(l.desc.MediaType), nil
}

// Compressed opens the blob; the store verifies its digest as it reads.
func (l *layoutLayer) Compressed() (io.ReadCloser, error) {
	p, err := blobPath(l.desc.Digest)
	if err != nil {
		return nil, err
	}
	f, err := l.fsys.Open(p)
	if err != nil {
		return nil, fmt.Errorf("layer blob %s: %w", l.desc.Digest, err)
	}
	return f, nil
}
