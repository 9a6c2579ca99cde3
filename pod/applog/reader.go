package applog

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// ReadOptions say which entries Read and Follow give.
type ReadOptions struct {
	// Since drops entries older than it.
	Since time.Time
	// Tail, when positive, starts at the last Tail entries of what is
	// there already.
	Tail int
	// Malformed is told of lines that do not parse (and they are
	// skipped); nil makes them an error.
	Malformed func(file string, line int, err error)
	// Poll is how often Follow looks for new lines; zero is 100ms.
	Poll time.Duration
}

// Read gives fn the entries of the log at path and its rotated files,
// oldest first. A log that does not exist (yet) has no entries.
func Read(path string, opts ReadOptions, fn func(Entry) error) error {
	return read(context.Background(), path, opts, nil, fn)
}

// Follow is Read that goes on giving entries as they are written, across
// rotations, until ctx is done or done reports that the writer has gone
// for good (the pod exited); then it reads what is left and returns nil.
func Follow(ctx context.Context, path string, opts ReadOptions, done func() bool, fn func(Entry) error) error {
	if done == nil {
		done = func() bool { return false }
	}
	return read(ctx, path, opts, done, fn)
}

func read(ctx context.Context, path string, opts ReadOptions, done func() bool, fn func(Entry) error) error {
	// The current file is opened before the rotated ones are listed, so a
	// rotation in between shows as a rotated file that is the one already
	// open, and is skipped.
	cur, err := os.Open(path)
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("open log: %w", err)
	}
	if cur != nil {
		defer func() { cur.Close() }()
	}
	var curInfo os.FileInfo
	if cur != nil {
		if curInfo, err = cur.Stat(); err != nil {
			return fmt.Errorf("open log: %w", err)
		}
	}
	emit := fn
	var tail *ring
	if opts.Tail > 0 {
		tail = &ring{n: opts.Tail}
		emit = func(e Entry) error { tail.add(e); return nil }
	}
	filter := func(e Entry) error {
		if !opts.Since.IsZero() && e.Time.Before(opts.Since) {
			return nil
		}
		return emit(e)
	}
	for _, old := range rotatedFiles(path) {
		f, err := os.Open(old)
		if err != nil {
			if os.IsNotExist(err) {
				continue // rotated away meanwhile
			}
			return fmt.Errorf("open log: %w", err)
		}
		if st, err := f.Stat(); err == nil && curInfo != nil && os.SameFile(st, curInfo) {
			f.Close()
			continue
		}
		lr := &lineReader{name: old, r: bufio.NewReaderSize(f, 64<<10), opts: &opts}
		err = lr.drain(filter, true)
		f.Close()
		if err != nil {
			return err
		}
	}
	var lr *lineReader
	if cur != nil {
		lr = &lineReader{name: path, r: bufio.NewReaderSize(cur, 64<<10), opts: &opts}
		if err := lr.drain(filter, done == nil); err != nil {
			return err
		}
	}
	if tail != nil {
		for _, e := range tail.entries() {
			if err := fn(e); err != nil {
				return err
			}
		}
		emit = fn
	}
	if done == nil {
		return nil
	}
	poll := opts.Poll
	if poll <= 0 {
		poll = 100 * time.Millisecond
	}
	for {
		// done is asked before the last read, so whatever the writer wrote
		// before it went is read.
		finished := done()
		if cur == nil {
			if cur, err = os.Open(path); err == nil {
				lr = &lineReader{name: path, r: bufio.NewReaderSize(cur, 64<<10), opts: &opts}
			} else if !os.IsNotExist(err) {
				return fmt.Errorf("open log: %w", err)
			}
		}
		if cur != nil {
			if err := lr.drain(filter, finished); err != nil {
				return err
			}
			// Rotated: what the old file had is read; go on with the new.
			if rotatedAway(cur, path) {
				cur.Close()
				cur = nil
				continue
			}
		}
		if finished {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(poll):
		}
	}
}

// rotatedAway reports whether path is now another file than f.
func rotatedAway(f *os.File, path string) bool {
	st, err := os.Stat(path)
	if err != nil {
		// Gone (or the pod directory moved as the pod exited): f stays
		// the file to read.
		return false
	}
	fst, err := f.Stat()
	return err == nil && !os.SameFile(st, fst)
}

// rotatedFiles lists path's rotated files that exist, oldest first.
func rotatedFiles(path string) []string {
	var files []string
	for i := 1; ; i++ {
		if _, err := os.Lstat(Rotated(path, i)); err != nil {
			break
		}
		files = append([]string{Rotated(path, i)}, files...)
	}
	return files
}

// lineReader parses the lines of one file, keeping an unfinished last line
// until its end is written.
type lineReader struct {
	name    string
	r       *bufio.Reader
	opts    *ReadOptions
	partial []byte
	n       int
}

// drain parses every whole line there is. With final, an unfinished last
// line (a writer that died half-way) is parsed too.
func (lr *lineReader) drain(fn func(Entry) error, final bool) error {
	for {
		b, err := lr.r.ReadBytes('\n')
		if len(b) > 0 {
			lr.partial = append(lr.partial, b...)
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				return fmt.Errorf("read log %s: %w", lr.name, err)
			}
			if final && len(lr.partial) > 0 {
				line := lr.partial
				lr.partial = nil
				return lr.parse(line, fn)
			}
			return nil
		}
		line := bytes.TrimSuffix(lr.partial, []byte("\n"))
		lr.partial = nil
		if err := lr.parse(line, fn); err != nil {
			return err
		}
	}
}

func (lr *lineReader) parse(line []byte, fn func(Entry) error) error {
	lr.n++
	e, err := ParseLine(string(line))
	if err != nil {
		if lr.opts.Malformed != nil {
			lr.opts.Malformed(lr.name, lr.n, err)
			return nil
		}
		return fmt.Errorf("%s:%d: %w", lr.name, lr.n, err)
	}
	return fn(e)
}

// ring keeps the last n entries.
type ring struct {
	n   int
	buf []Entry
	i   int
}

func (r *ring) add(e Entry) {
	if len(r.buf) < r.n {
		r.buf = append(r.buf, e)
		return
	}
	r.buf[r.i] = e
	r.i = (r.i + 1) % r.n
}

func (r *ring) entries() []Entry {
	return append(append([]Entry(nil), r.buf[r.i:]...), r.buf[:r.i]...)
}
