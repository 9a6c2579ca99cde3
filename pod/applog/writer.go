package applog

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// Defaults of a File's limits.
const (
	DefaultMaxSize    = 10 << 20 // bytes in name.log before it is rotated
	DefaultMaxFiles   = 5        // name.log and up to 4 rotated ones
	DefaultMaxLineLen = 16 << 10 // bytes of a message before it is split (P)
)

// Options are a File's limits; zero values take the defaults.
type Options struct {
	// MaxSize is the size a file grows to before it is rotated; negative
	// never rotates (a kubelet rotates CRI logs itself).
	MaxSize int64
	// MaxFiles is how many files are kept, the current one included.
	MaxFiles int
	// MaxLineLen is the longest message of one log line.
	MaxLineLen int
	// Now stamps lines; nil is time.Now.
	Now func() time.Time
}

// File is an app's log file, open for writing.
type File struct {
	path string
	opts Options
	mu   sync.Mutex
	f    *os.File
	size int64
}

// Create opens the log file at path for appending, making its directory.
// An existing file is kept and written after.
func Create(path string, opts Options) (*File, error) {
	if opts.MaxSize == 0 {
		opts.MaxSize = DefaultMaxSize
	}
	if opts.MaxFiles <= 0 {
		opts.MaxFiles = DefaultMaxFiles
	}
	if opts.MaxLineLen <= 0 {
		opts.MaxLineLen = DefaultMaxLineLen
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("log directory: %w", err)
	}
	lf := &File{path: path, opts: opts}
	if err := lf.open(); err != nil {
		return nil, err
	}
	return lf, nil
}

func (lf *File) open() error {
	f, err := os.OpenFile(lf.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("open log %s: %w", lf.path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("open log %s: %w", lf.path, err)
	}
	lf.f, lf.size = f, st.Size()
	return nil
}

// Path is where the current file is.
func (lf *File) Path() string { return lf.path }

// Reopen closes the file and opens path afresh: after someone else moved
// it away (a kubelet's own rotation, CRI's ReopenContainerLog).
func (lf *File) Reopen() error {
	lf.mu.Lock()
	defer lf.mu.Unlock()
	if lf.f != nil {
		lf.f.Close()
		lf.f = nil
	}
	return lf.open()
}

// Close closes the file.
func (lf *File) Close() error {
	lf.mu.Lock()
	defer lf.mu.Unlock()
	if lf.f == nil {
		return nil
	}
	err := lf.f.Close()
	lf.f = nil
	return err
}

// WriteEntry writes one log line, rotating first when it would pass the
// size limit. The line goes out in one write, so a reader sees it whole
// or not at all (but for a crash half-way).
func (lf *File) WriteEntry(e Entry) error {
	line := e.Format()
	lf.mu.Lock()
	defer lf.mu.Unlock()
	if lf.f == nil {
		return os.ErrClosed
	}
	if lf.opts.MaxSize > 0 && lf.size > 0 && lf.size+int64(len(line)) > lf.opts.MaxSize {
		if err := lf.rotate(); err != nil {
			return err
		}
	}
	n, err := io.WriteString(lf.f, line)
	lf.size += int64(n)
	if err != nil {
		return fmt.Errorf("write log %s: %w", lf.path, err)
	}
	return nil
}

// rotate shifts name.log.N-1 to name.log.N ... name.log to name.log.1,
// dropping the oldest, and starts a new name.log.
func (lf *File) rotate() error {
	if err := lf.f.Close(); err != nil {
		return fmt.Errorf("rotate log %s: %w", lf.path, err)
	}
	lf.f = nil
	last := lf.opts.MaxFiles - 1
	if last < 1 {
		// Only one file is kept: start it afresh.
		if err := os.Remove(lf.path); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("rotate log %s: %w", lf.path, err)
		}
		return lf.open()
	}
	for i := last - 1; i >= 1; i-- {
		if err := os.Rename(Rotated(lf.path, i), Rotated(lf.path, i+1)); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("rotate log %s: %w", lf.path, err)
		}
	}
	if err := os.Rename(lf.path, Rotated(lf.path, 1)); err != nil {
		return fmt.Errorf("rotate log %s: %w", lf.path, err)
	}
	return lf.open()
}

// Rotated is the name of the i-th rotated file of path (i = 0 is path).
func Rotated(path string, i int) string {
	if i == 0 {
		return path
	}
	return path + "." + strconv.Itoa(i)
}

// Stream returns a writer of one stream's output into the file: it cuts
// what is written into lines, splits lines longer than the maximum, and
// writes each as a log line. Close writes a last unfinished line, as full.
func (lf *File) Stream(stream string) *StreamWriter {
	return &StreamWriter{lf: lf, stream: stream}
}

// StreamWriter writes one stream of an app to a File. It is not safe for
// concurrent use; two streams are two writers.
type StreamWriter struct {
	lf     *File
	stream string
	buf    []byte
	// Lines, when set, receives each whole line (newline included) as it
	// is logged, and an unfinished line at Close: the supervisor's own
	// stdout, which then never gets half a line mixed with another app's.
	Lines io.Writer
	err   error
}

// Write logs the whole lines of p and keeps the rest for later.
func (w *StreamWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.line(w.buf[:i], true)
		w.buf = w.buf[i+1:]
	}
	max := w.lf.opts.MaxLineLen
	for len(w.buf) >= max {
		w.emit(w.buf[:max], true)
		w.buf = w.buf[max:]
	}
	// Keep the buffer from holding on to a large backing array.
	if len(w.buf) == 0 {
		w.buf = nil
	}
	return len(p), w.err
}

// line logs a whole line, in parts of at most the maximum length.
func (w *StreamWriter) line(l []byte, newline bool) {
	max := w.lf.opts.MaxLineLen
	for len(l) > max {
		w.emit(l[:max], true)
		l = l[max:]
	}
	w.emit(l, false)
	if w.Lines != nil {
		if newline {
			w.passOn(append(l[:len(l):len(l)], '\n'))
		} else {
			w.passOn(l)
		}
	}
}

// emit writes a log line; a partial one goes to Lines at once, so a very
// long line still reaches the journal.
func (w *StreamWriter) emit(msg []byte, partial bool) {
	err := w.lf.WriteEntry(Entry{Time: w.lf.opts.Now(), Stream: w.stream, Partial: partial, Message: string(msg)})
	if err != nil && w.err == nil {
		w.err = err
	}
	if partial && w.Lines != nil {
		w.passOn(msg)
	}
}

func (w *StreamWriter) passOn(b []byte) {
	// The journal side is best effort: a closed stdout must not stop the
	// log file.
	_, _ = w.Lines.Write(b)
}

// Flush logs what is buffered as a partial line: for output that is
// waiting for input (a prompt) rather than finishing its line.
func (w *StreamWriter) Flush() error {
	if len(w.buf) > 0 {
		w.emit(w.buf, true)
		w.buf = nil
	}
	return w.err
}

// Close logs an unfinished last line as a full one.
func (w *StreamWriter) Close() error {
	if len(w.buf) > 0 {
		w.line(w.buf, false)
		w.buf = nil
	}
	return w.err
}
