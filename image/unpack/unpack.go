// Package unpack extracts image layer tarballs into directories that overlayfs
// can stack as lowerdirs.
//
// Layers come from untrusted images, so every entry is resolved inside the
// destination root: absolute names and ".." are refused, and parents are
// walked with securejoin so a symlink planted by an earlier entry cannot send
// a later one outside. OCI whiteouts are turned into overlayfs's own form
// (".wh.x" becomes a 0/0 character device x, ".wh..wh..opq" the opaque xattr
// on its directory), so a layer is usable as extracted, with no copy per pod.
// Device nodes are refused: an image has no business shipping them, and the
// runtime provides /dev.
package unpack

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
)

// ErrLimit is returned when a layer unpacks to more than Options.MaxBytes.
var ErrLimit = errors.New("layer exceeds the unpacked size limit")

// Options tune extraction.
type Options struct {
	// MaxBytes bounds the bytes of file content a layer may unpack to
	// (decompression bombs, huge sparse files); 0 means no bound.
	MaxBytes int64
}

// Stats says what an extraction wrote.
type Stats struct {
	Entries int
	Bytes   int64
	// RootMeta is set when the layer carried an entry for its root
	// directory, whose mode and owner were then applied to root.
	RootMeta bool
}

const (
	whiteoutPrefix = ".wh."
	opaqueMarker   = ".wh..wh..opq"
)

// Decompress returns the uncompressed stream of a layer blob, recognising
// gzip and zstd by their magic numbers (media types lie more often than
// magic does) and passing anything else through as a plain tar.
func Decompress(r io.Reader) (io.ReadCloser, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic, err := br.Peek(4)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read layer header: %w", err)
	}
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		z, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("gzip layer: %w", err)
		}
		return z, nil
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		z, err := zstd.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("zstd layer: %w", err)
		}
		return z.IOReadCloser(), nil
	}
	return io.NopCloser(br), nil
}

// Apply extracts the uncompressed tar stream r into root, which must exist.
func Apply(ctx context.Context, r io.Reader, root string, opts Options) (Stats, error) {
	var st Stats
	tr := tar.NewReader(r)
	type dirTime struct {
		path  string
		mtime time.Time
	}
	var dirs []dirTime
	for {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return st, fmt.Errorf("read tar entry: %w", err)
		}
		st.Entries++
		name, err := cleanName(hdr.Name)
		if err != nil {
			return st, err
		}
		if name == "" { // the root itself
			if hdr.Typeflag == tar.TypeDir {
				if err := setMeta(root, hdr); err != nil {
					return st, err
				}
				st.RootMeta = true
				dirs = append(dirs, dirTime{root, hdr.ModTime})
			}
			continue
		}
		dir, base := path.Split(name)
		parent, err := mkParents(root, dir)
		if err != nil {
			return st, fmt.Errorf("entry %q: %w", hdr.Name, err)
		}
		if base == opaqueMarker {
			if err := unix.Lsetxattr(parent, "trusted.overlay.opaque", []byte("y"), 0); err != nil {
				return st, fmt.Errorf("entry %q: mark opaque: %w", hdr.Name, err)
			}
			continue
		}
		if strings.HasPrefix(base, whiteoutPrefix) {
			target := filepath.Join(parent, strings.TrimPrefix(base, whiteoutPrefix))
			if err := removeExisting(target); err != nil {
				return st, err
			}
			if err := unix.Mknod(target, unix.S_IFCHR, 0); err != nil {
				return st, fmt.Errorf("entry %q: whiteout: %w", hdr.Name, err)
			}
			continue
		}
		target := filepath.Join(parent, base)
		n, err := writeEntry(root, target, hdr, tr, opts.MaxBytes-st.Bytes, opts.MaxBytes > 0)
		st.Bytes += n
		if err != nil {
			return st, fmt.Errorf("entry %q: %w", hdr.Name, err)
		}
		if hdr.Typeflag == tar.TypeDir {
			dirs = append(dirs, dirTime{target, hdr.ModTime})
		}
	}
	// Directory times last: creating children changed them.
	for i := len(dirs) - 1; i >= 0; i-- {
		setTime(dirs[i].path, dirs[i].mtime)
	}
	return st, nil
}

// cleanName turns a tar entry name into a clean relative path, refusing
// names that climb out of the root.
func cleanName(n string) (string, error) {
	if strings.ContainsRune(n, 0) {
		return "", fmt.Errorf("entry %q: NUL in name", n)
	}
	if path.IsAbs(n) {
		return "", fmt.Errorf("entry %q: absolute path refused", n)
	}
	for _, part := range strings.Split(n, "/") {
		if part == ".." {
			return "", fmt.Errorf("entry %q: path with .. refused", n)
		}
	}
	c := path.Clean(n)
	if c == "." {
		return "", nil
	}
	return c, nil
}

// mkParents resolves dir inside root (following symlinks only within root)
// and creates what is missing.
func mkParents(root, dir string) (string, error) {
	p, err := securejoin.SecureJoin(root, dir)
	if err != nil {
		return "", fmt.Errorf("resolve parent %q: %w", dir, err)
	}
	if err := os.MkdirAll(p, 0o755); err != nil {
		return "", fmt.Errorf("create parent %q: %w", dir, err)
	}
	// MkdirAll followed nothing outside: SecureJoin resolved every existing
	// component, and what it created are plain directories. Check that what
	// we got is a directory and not something swapped in.
	fi, err := os.Lstat(p)
	if err != nil {
		return "", err
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("parent %q is not a directory", dir)
	}
	return p, nil
}

func removeExisting(target string) error {
	fi, err := os.Lstat(target)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return os.RemoveAll(target)
	}
	return os.Remove(target)
}

// writeEntry creates one non-whiteout entry at target and returns the bytes
// of content written.
func writeEntry(root, target string, hdr *tar.Header, r io.Reader, budget int64, bounded bool) (int64, error) {
	// A later entry replaces an earlier one, except that a directory over a
	// directory merges.
	if fi, err := os.Lstat(target); err == nil {
		if !(fi.IsDir() && hdr.Typeflag == tar.TypeDir) {
			if err := removeExisting(target); err != nil {
				return 0, err
			}
		}
	}
	var n int64
	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := os.Mkdir(target, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return 0, err
		}
	case tar.TypeReg: // the reader reports old TypeRegA entries as TypeReg
		if bounded && hdr.Size > budget {
			return 0, ErrLimit
		}
		f, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY|unix.O_NOFOLLOW, 0o600)
		if err != nil {
			return 0, err
		}
		n, err = io.Copy(f, r)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return n, fmt.Errorf("write: %w", err)
		}
	case tar.TypeSymlink:
		if err := os.Symlink(hdr.Linkname, target); err != nil {
			return 0, err
		}
	case tar.TypeLink:
		ln, err := cleanName(hdr.Linkname)
		if err != nil || ln == "" {
			return 0, fmt.Errorf("hard link to %q refused", hdr.Linkname)
		}
		src, err := securejoin.SecureJoin(root, ln)
		if err != nil {
			return 0, fmt.Errorf("resolve hard link target %q: %w", hdr.Linkname, err)
		}
		fi, err := os.Lstat(src)
		if err != nil {
			return 0, fmt.Errorf("hard link target %q: %w", hdr.Linkname, err)
		}
		if fi.IsDir() {
			return 0, fmt.Errorf("hard link to directory %q refused", hdr.Linkname)
		}
		if err := os.Link(src, target); err != nil {
			return 0, err
		}
		// A hard link shares the inode: its metadata is the target's.
		return 0, nil
	case tar.TypeFifo:
		if err := unix.Mkfifo(target, uint32(hdr.Mode&0o7777)); err != nil {
			return 0, err
		}
	case tar.TypeChar, tar.TypeBlock:
		return 0, fmt.Errorf("device node refused (major %d, minor %d)", hdr.Devmajor, hdr.Devminor)
	case tar.TypeXGlobalHeader:
		return 0, nil
	default:
		return 0, fmt.Errorf("unsupported tar entry type %q", hdr.Typeflag)
	}
	if err := setMeta(target, hdr); err != nil {
		return n, err
	}
	if hdr.Typeflag != tar.TypeDir {
		setTime(target, hdr.ModTime)
	}
	return n, nil
}

// setMeta applies ownership, xattrs and mode, in that order: chown clears
// setuid bits, and security.capability must be set after chown too.
func setMeta(target string, hdr *tar.Header) error {
	if err := os.Lchown(target, hdr.Uid, hdr.Gid); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok {
			continue
		}
		// trusted.overlay.* would let a layer forge whiteouts or redirects.
		if strings.HasPrefix(name, "trusted.overlay.") {
			continue
		}
		if err := unix.Lsetxattr(target, name, []byte(v), 0); err != nil {
			if errors.Is(err, unix.ENOTSUP) {
				continue
			}
			return fmt.Errorf("set xattr %s: %w", name, err)
		}
	}
	if hdr.Typeflag == tar.TypeSymlink {
		return nil
	}
	mode := uint32(hdr.Mode & 0o7777)
	if err := unix.Fchmodat(unix.AT_FDCWD, target, mode, 0); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	return nil
}

func setTime(target string, t time.Time) {
	if t.IsZero() {
		return
	}
	ts := unix.NsecToTimespec(t.UnixNano())
	_ = unix.UtimesNanoAt(unix.AT_FDCWD, target, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
}
