// Package source opens the places images come from, each as a
// go-containerregistry v1.Image that the store imports:
//
//	oci:DIR[:REF]             an OCI image layout directory
//	oci-archive:FILE[:REF]    a tar of an OCI image layout, read in place
//	docker-archive:FILE[:REF] the output of docker save
//	docker://HOST[:PORT]/NAME[:TAG|@DIGEST]  an image in a registry
//
// REF picks an image when a layout or archive holds several. Opening reads
// only manifests and configs; layer blobs are read when the store imports
// them, and verified there.
package source

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Transport names the kind of a source.
type Transport string

// The transports.
const (
	OCILayout     Transport = "oci"
	OCIArchive    Transport = "oci-archive"
	DockerArchive Transport = "docker-archive"
	Docker        Transport = "docker"
)

// Options tune how sources are reached.
type Options struct {
	// InsecureHTTP allows registries served over plain HTTP.
	InsecureHTTP bool
	// AuthFile is a docker-style auth file (config.json); empty means
	// DefaultAuthFile, if it exists.
	AuthFile string
}

// Source is a parsed image source.
type Source struct {
	Transport Transport
	Path      string
	// Ref picks an image within the source; empty for its only image.
	Ref string
}

func (s Source) String() string {
	if s.Transport == Docker {
		return "docker://" + s.Path
	}
	if s.Ref == "" {
		return string(s.Transport) + ":" + s.Path
	}
	return string(s.Transport) + ":" + s.Path + ":" + s.Ref
}

// Parse reads TRANSPORT:PATH[:REF]. ok is false when s names no transport
// (it is then an image name to look up in the store).
func Parse(s string) (src Source, ok bool, err error) {
	if rest, ok := isDocker(s); ok {
		if _, err := name.ParseReference(rest, name.WeakValidation); err != nil {
			return Source{}, true, fmt.Errorf("image source %q: %w", s, err)
		}
		return Source{Transport: Docker, Path: rest}, true, nil
	}
	t, rest, found := strings.Cut(s, ":")
	if !found {
		return Source{}, false, nil
	}
	switch Transport(t) {
	case OCILayout, OCIArchive, DockerArchive:
	default:
		return Source{}, false, nil
	}
	src.Transport = Transport(t)
	src.Path, src.Ref, _ = strings.Cut(rest, ":")
	if src.Path == "" {
		return Source{}, true, fmt.Errorf("image source %q: no path", s)
	}
	return src, true, nil
}

// Opened is an image read from a source, with the name the source gives
// it, to be closed once imported.
type Opened struct {
	Image v1.Image
	Name  string
	io.Closer
}

type nopCloser struct{}

func (nopCloser) Close() error { return nil }

// Open opens the image src names.
func Open(ctx context.Context, src Source, o Options) (*Opened, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	switch src.Transport {
	case Docker:
		return openDocker(ctx, src, o)
	case OCILayout:
		img, n, err := openLayout(os.DirFS(src.Path), src.Ref)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", src, err)
		}
		return &Opened{Image: img, Name: pick(src.Ref, n), Closer: nopCloser{}}, nil
	case OCIArchive:
		fsys, err := openTarFS(src.Path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", src, err)
		}
		img, n, err := openLayout(fsys, src.Ref)
		if err != nil {
			fsys.Close()
			return nil, fmt.Errorf("%s: %w", src, err)
		}
		return &Opened{Image: img, Name: pick(src.Ref, n), Closer: fsys}, nil
	case DockerArchive:
		var tag *name.Tag
		if src.Ref != "" {
			t, err := name.NewTag(src.Ref)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", src, err)
			}
			tag = &t
		}
		img, err := tarball.ImageFromPath(src.Path, tag)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", src, err)
		}
		n := src.Ref
		if n == "" {
			n = dockerArchiveName(src.Path)
		}
		return &Opened{Image: img, Name: n, Closer: nopCloser{}}, nil
	}
	return nil, fmt.Errorf("unknown transport %q", src.Transport)
}

func pick(ref, layoutName string) string {
	if layoutName != "" {
		return layoutName
	}
	return ref
}

// dockerArchiveName is the first RepoTag of a docker save archive.
func dockerArchiveName(path string) string {
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(path) })
	if err != nil || len(m) == 0 || len(m[0].RepoTags) == 0 {
		return ""
	}
	return m[0].RepoTags[0]
}
