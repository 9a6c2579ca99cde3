package source

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"
)

// tarFS reads the regular files of a tar archive in place: one pass records
// where each file's data starts, then files are sections of the archive. An
// OCI archive is read this way with no copy to a temporary directory.
type tarFS struct {
	f     *os.File
	files map[string]tarEntry
}

type tarEntry struct {
	off, size int64
	mode      fs.FileMode
	mtime     time.Time
}

// countingReader tracks the offset in the archive; archive/tar reads
// headers in whole blocks with no read-ahead, so after Next the offset is
// where the entry's data starts.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func openTarFS(file string) (*tarFS, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	cr := &countingReader{r: f}
	tr := tar.NewReader(cr)
	t := &tarFS{f: f, files: map[string]tarEntry{}}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("read archive %s: %w", file, err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		if isSparse(hdr) { // stored data is not the file's bytes
			continue
		}
		name := path.Clean(hdr.Name)
		if !fs.ValidPath(name) {
			continue
		}
		t.files[name] = tarEntry{off: cr.n, size: hdr.Size, mode: hdr.FileInfo().Mode(), mtime: hdr.ModTime}
	}
	return t, nil
}

func isSparse(hdr *tar.Header) bool {
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

func (t *tarFS) Close() error { return t.f.Close() }

// Open implements fs.FS.
func (t *tarFS) Open(name string) (fs.File, error) {
	e, ok := t.files[name]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return &tarFile{SectionReader: io.NewSectionReader(t.f, e.off, e.size), name: name, e: e}, nil
}

type tarFile struct {
	*io.SectionReader
	name string
	e    tarEntry
}

func (f *tarFile) Stat() (fs.FileInfo, error) { return tarInfo{f.name, f.e}, nil }
func (f *tarFile) Close() error               { return nil }

type tarInfo struct {
	name string
	e    tarEntry
}

func (i tarInfo) Name() string       { return path.Base(i.name) }
func (i tarInfo) Size() int64        { return i.e.size }
func (i tarInfo) Mode() fs.FileMode  { return i.e.mode }
func (i tarInfo) ModTime() time.Time { return i.e.mtime }
func (i tarInfo) IsDir() bool        { return false }
func (i tarInfo) Sys() any           { return nil }
