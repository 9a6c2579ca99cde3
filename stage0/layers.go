package stage0

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Stage0 looks into an image's layers before any pod exists, to refuse a
// missing user or executable up front. It reads the layers as overlayfs
// would stack them: for each path the topmost layer that has it wins, a
// whiteout (a 0/0 character device) hides it, and symlinks are followed
// within the image's root. (Opaque directories are not honoured: the
// check can only err towards letting the run fail later.)

var errWhiteout = errors.New("whited out")

// lookupLayer returns the host path of the entry for p (clean, absolute)
// in the topmost layer that has one.
func lookupLayer(layers []string, p string) (string, fs.FileInfo, error) {
	for i := len(layers) - 1; i >= 0; i-- {
		fp := filepath.Join(layers[i], p)
		fi, err := os.Lstat(fp)
		if err != nil {
			continue // absent here (or a parent is not a directory)
		}
		if fi.Mode()&fs.ModeCharDevice != 0 {
			return "", nil, errWhiteout
		}
		return fp, fi, nil
	}
	return "", nil, fs.ErrNotExist
}

// resolveInLayers follows p through the layers, resolving symlinks inside
// the image root, and returns the host path of what it names.
func resolveInLayers(layers []string, p string) (string, fs.FileInfo, error) {
	todo := strings.Split(strings.TrimPrefix(path.Clean("/"+p), "/"), "/")
	cur := "/"
	for links := 0; len(todo) > 0; {
		c := todo[0]
		todo = todo[1:]
		if c == "" || c == "." {
			continue
		}
		if c == ".." {
			cur = path.Dir(cur)
			continue
		}
		next := path.Join(cur, c)
		hp, fi, err := lookupLayer(layers, next)
		if err != nil {
			if errors.Is(err, errWhiteout) {
				return "", nil, fs.ErrNotExist
			}
			return "", nil, err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			if links++; links > 40 {
				return "", nil, fmt.Errorf("%s: too many levels of symbolic links", p)
			}
			target, err := os.Readlink(hp)
			if err != nil {
				return "", nil, err
			}
			if path.IsAbs(target) {
				cur = "/"
			}
			todo = append(strings.Split(strings.Trim(target, "/"), "/"), todo...)
			continue
		}
		if len(todo) > 0 && !fi.IsDir() {
			return "", nil, fs.ErrNotExist
		}
		cur = next
		if len(todo) == 0 {
			return hp, fi, nil
		}
	}
	_, fi, err := lookupLayer(layers, cur)
	return cur, fi, err
}

// layerFile opens the regular file at p as the image shows it.
func layerFile(layers []string, p string) (*os.File, error) {
	hp, fi, err := resolveInLayers(layers, p)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file in the image", p)
	}
	return os.Open(hp)
}

// existsInLayers reports whether p names an executable regular file.
func existsInLayers(layers []string, p string) bool {
	_, fi, err := resolveInLayers(layers, p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}
