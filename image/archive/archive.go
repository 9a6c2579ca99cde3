// Package archive writes images: a layer from a directory tree, and an OCI
// image archive (a tar of an OCI image layout) holding an image. Output is
// reproducible: the same tree and config give the same digests.
package archive

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
)

// Epoch is the timestamp given to every file and to the image, so builds
// are reproducible.
var Epoch = time.Unix(0, 0).UTC()

// TarDir writes the tree under dir as an uncompressed layer tar: entries
// sorted, owned by root, timestamps at Epoch.
func TarDir(w io.Writer, dir string) error {
	tw := tar.NewWriter(w)
	if err := WriteTree(tw, dir, TreeOptions{}); err != nil {
		return err
	}
	return tw.Close()
}

// TreeOptions say how WriteTree writes a tree.
type TreeOptions struct {
	// Prefix puts the tree under a directory of that name (with an entry
	// for it); empty writes it at the top, without one for dir itself.
	Prefix string
	// Keep writes owners, times and extended attributes as they are;
	// otherwise entries are root's, at Epoch, for reproducible builds.
	Keep bool
}

// WriteTree writes the tree under dir to tw, sorted, hard links as links.
func WriteTree(tw *tar.Writer, dir string, o TreeOptions) error {
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir || o.Prefix != "" {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("walk %s: %w", dir, err)
	}
	sort.Strings(paths)
	seen := map[uint64]string{} // inode -> first name, for hard links
	for _, p := range paths {
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		link := ""
		if fi.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		hdr.Name = path.Join(o.Prefix, filepath.ToSlash(rel))
		if fi.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uname, hdr.Gname, hdr.Format = "", "", tar.FormatPAX
		if o.Keep {
			hdr.PAXRecords = xattrs(p)
		} else {
			hdr.Uid, hdr.Gid = 0, 0
			hdr.ModTime, hdr.AccessTime, hdr.ChangeTime = Epoch, time.Time{}, time.Time{}
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && fi.Mode().IsRegular() && st.Nlink > 1 {
			if first, ok := seen[st.Ino]; ok {
				hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
			} else {
				seen[st.Ino] = hdr.Name
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if hdr.Typeflag == tar.TypeReg {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, f)
			f.Close()
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
		}
	}
	return nil
}

// xattrs reads a file's extended attributes as PAX records, less the
// overlay's own.
func xattrs(p string) map[string]string {
	buf := make([]byte, 4096)
	n, err := unix.Llistxattr(p, buf)
	if err != nil || n <= 0 {
		return nil
	}
	out := map[string]string{}
	for _, name := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
		if name == "" || strings.HasPrefix(name, "trusted.overlay.") {
			continue
		}
		v := make([]byte, 4096)
		if vn, err := unix.Lgetxattr(p, name, v); err == nil {
			out["SCHILY.xattr."+name] = string(v[:vn])
		}
	}
	return out
}

// ImageFromDirs builds an OCI image with one gzip layer per directory and
// the given runtime config.
func ImageFromDirs(dirs []string, cfg ocispec.ImageConfig) (v1.Image, error) {
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	for _, d := range dirs {
		var buf bytes.Buffer
		if err := TarDir(&buf, d); err != nil {
			return nil, err
		}
		b := buf.Bytes()
		layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(b)), nil
		}, tarball.WithMediaType(types.OCILayer))
		if err != nil {
			return nil, err
		}
		if img, err = mutate.AppendLayers(img, layer); err != nil {
			return nil, err
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Created = v1.Time{Time: Epoch}
	cf.Config.Entrypoint = cfg.Entrypoint
	cf.Config.Cmd = cfg.Cmd
	cf.Config.Env = cfg.Env
	cf.Config.WorkingDir = cfg.WorkingDir
	cf.Config.User = cfg.User
	cf.Config.Labels = cfg.Labels
	return mutate.ConfigFile(img, cf)
}

// WriteOCIArchive writes img as an OCI archive whose index names it: the
// full name in containerd's annotation, and the tag alone in the OCI
// ref.name annotation, which is how skopeo and umoci address an image of a
// layout (oci-archive:FILE:TAG).
func WriteOCIArchive(w io.Writer, img v1.Image, refName string) error {
	tw := tar.NewWriter(w)
	put := func(name string, b []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), ModTime: Epoch, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := tw.Write(b)
		return err
	}
	putBlob := func(d string, size int64, r io.Reader) error {
		h, err := v1.NewHash(d)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: "blobs/" + h.Algorithm + "/" + h.Hex, Mode: 0o644, Size: size, ModTime: Epoch, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err = io.Copy(tw, r)
		return err
	}
	layout, _ := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err := put(ocispec.ImageLayoutFile, layout); err != nil {
		return err
	}
	rawManifest, err := img.RawManifest()
	if err != nil {
		return err
	}
	mt, err := img.MediaType()
	if err != nil {
		return err
	}
	index := ocispec.Index{
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{{
			MediaType:   string(mt),
			Digest:      digest.FromBytes(rawManifest),
			Size:        int64(len(rawManifest)),
			Annotations: refAnnotations(refName),
		}},
	}
	index.SchemaVersion = 2
	ib, _ := json.Marshal(index)
	if err := put("index.json", ib); err != nil {
		return err
	}
	if err := putBlob(digest.FromBytes(rawManifest).String(), int64(len(rawManifest)), bytes.NewReader(rawManifest)); err != nil {
		return err
	}
	rawConfig, err := img.RawConfigFile()
	if err != nil {
		return err
	}
	if err := putBlob(digest.FromBytes(rawConfig).String(), int64(len(rawConfig)), bytes.NewReader(rawConfig)); err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return err
		}
		size, err := l.Size()
		if err != nil {
			return err
		}
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		err = putBlob(d.String(), size, rc)
		rc.Close()
		if err != nil {
			return fmt.Errorf("layer %s: %w", d, err)
		}
	}
	return tw.Close()
}

func refAnnotations(name string) map[string]string {
	a := map[string]string{"io.containerd.image.name": name}
	if i := strings.LastIndexAny(name, ":/@"); i >= 0 && name[i] == ':' {
		a[ocispec.AnnotationRefName] = name[i+1:]
	} else if i < 0 {
		a[ocispec.AnnotationRefName] = name
	}
	return a
}
