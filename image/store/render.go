package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// Render copies the image's root filesystem, its layers flattened as
// overlayfs would show them (whiteouts and opaque directories applied),
// into dir, which is created if needed. Every write goes through an
// os.Root, so nothing in the image can send one outside dir. Regular
// files, directories, symlinks and hard links are copied with their
// modes, owners and times; extended attributes and special files (fifos,
// sockets) are not.
func (s *Store) Render(ctx context.Context, img *Image, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("render %s: %w", img.ID, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("render %s: %w", img.ID, err)
	}
	defer root.Close()
	dirTimes := map[string]time.Time{}
	for _, l := range img.Layers {
		if err := renderLayer(ctx, s.LayerPath(l.ChainID), root, dirTimes); err != nil {
			return fmt.Errorf("render %s: layer %s: %w", img.ID, l.Digest, err)
		}
	}
	// Directory times last: writing into a directory changes them.
	for rel, t := range dirTimes {
		if err := root.Chtimes(rel, t, t); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("render %s: %w", img.ID, err)
		}
	}
	return nil
}

func renderLayer(ctx context.Context, src string, root *os.Root, dirTimes map[string]time.Time) error {
	links := map[uint64]string{} // inode -> first path, for hard links
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		switch {
		case fi.Mode()&fs.ModeCharDevice != 0 && st.Rdev == 0: // whiteout
			if err := root.RemoveAll(rel); err != nil {
				return err
			}
			delete(dirTimes, rel)
			return nil
		case fi.IsDir():
			if rel != "." {
				if cur, err := root.Lstat(rel); err == nil && !cur.IsDir() {
					if err := root.Remove(rel); err != nil {
						return err
					}
				}
				if err := root.Mkdir(rel, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
					return err
				}
			}
			if isOpaque(p) {
				if err := clearDir(root, rel); err != nil {
					return err
				}
			}
			dirTimes[rel] = fi.ModTime()
			return setOwnerMode(root, rel, fi, st)
		}
		if err := root.RemoveAll(rel); err != nil {
			return err
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if err := root.Symlink(target, rel); err != nil {
				return err
			}
			return root.Lchown(rel, int(st.Uid), int(st.Gid))
		case fi.Mode().IsRegular():
			if first, ok := links[st.Ino]; ok && st.Nlink > 1 {
				return root.Link(first, rel)
			}
			links[st.Ino] = rel
			if err := copyFile(root, rel, p); err != nil {
				return err
			}
			if err := setOwnerMode(root, rel, fi, st); err != nil {
				return err
			}
			return root.Chtimes(rel, fi.ModTime(), fi.ModTime())
		}
		return nil // fifos and sockets: an image has little use for them
	})
}

func isOpaque(p string) bool {
	buf := make([]byte, 4)
	n, err := unix.Lgetxattr(p, "trusted.overlay.opaque", buf)
	return err == nil && n == 1 && buf[0] == 'y'
}

func clearDir(root *os.Root, rel string) error {
	f, err := root.Open(rel)
	if err != nil {
		return err
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := root.RemoveAll(filepath.Join(rel, n)); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(root *os.Root, rel, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// setOwnerMode chowns before chmod: chown clears setuid bits.
func setOwnerMode(root *os.Root, rel string, fi fs.FileInfo, st *syscall.Stat_t) error {
	if err := root.Lchown(rel, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	return root.Chmod(rel, fi.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky))
}

// Extract writes what rkt's `image extract` gives: the image's root
// filesystem under dir/rootfs, and its config and manifest beside it as
// dir/config.json and dir/manifest.json.
func (s *Store) Extract(ctx context.Context, img *Image, dir string) error {
	if err := s.Render(ctx, img, filepath.Join(dir, "rootfs")); err != nil {
		return err
	}
	for name, d := range map[string]digest.Digest{"config.json": img.Config, "manifest.json": img.ID} {
		b, err := s.ReadBlob(d)
		if err != nil {
			return fmt.Errorf("extract %s: %w", img.ID, err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return fmt.Errorf("extract %s: %w", img.ID, err)
		}
	}
	return nil
}
