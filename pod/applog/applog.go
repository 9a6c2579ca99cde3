// Package applog keeps an app's output in a file, in the line format of the
// kubelet's Container Runtime Interface, so the same file serves `orbit
// logs`, the API service and a kubelet:
//
//	2026-11-23T11:14:46.123456789Z stdout F a whole line
//	2026-11-23T11:14:46.123456789Z stderr P the first part of a long line
//
// Each line carries its time (RFC 3339 with nanoseconds), the stream, a tag
// (F for a full line, P for a part of a line split at the maximum line
// length; the part that ends the line is F) and the message without its
// newline.
//
// A File is the writing end: stage1 opens one per app and gets a Stream
// writer for each of the app's stdout and stderr; both write whole log lines
// under one lock, so lines of the two streams never mix. When the file
// reaches its size limit it is rotated: name.log becomes name.log.1, which
// becomes name.log.2, and so on up to the number of files kept.
//
// Read and Follow are the reading end: they parse the rotated files oldest
// first, and Follow keeps reading as lines are added, across rotations,
// until told the writer is gone.
package applog

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Stream names, as CRI spells them.
const (
	Stdout = "stdout"
	Stderr = "stderr"
)

// Tags of a log line.
const (
	TagFull    = "F"
	TagPartial = "P"
)

// TimeFormat is the time stamp's format; the kubelet parses it the same way.
const TimeFormat = time.RFC3339Nano

// Entry is one parsed log line.
type Entry struct {
	Time   time.Time
	Stream string
	// Partial says the message is a part of a line that continues in the
	// next entry of the same stream.
	Partial bool
	Message string
}

// ErrMalformed is wrapped by ParseLine's errors.
var ErrMalformed = errors.New("malformed log line")

// ParseLine parses one line of a log file, without its newline.
func ParseLine(line string) (Entry, error) {
	ts, rest, ok := strings.Cut(line, " ")
	if !ok {
		return Entry{}, fmt.Errorf("%w: no time stamp: %q", ErrMalformed, clip(line))
	}
	t, err := time.Parse(TimeFormat, ts)
	if err != nil {
		return Entry{}, fmt.Errorf("%w: time stamp %q: %v", ErrMalformed, ts, err)
	}
	stream, rest, ok := strings.Cut(rest, " ")
	if !ok || (stream != Stdout && stream != Stderr) {
		return Entry{}, fmt.Errorf("%w: stream %q is not stdout or stderr", ErrMalformed, clip(stream))
	}
	tag, msg, ok := strings.Cut(rest, " ")
	if !ok {
		// An empty message may come without its separating space.
		tag, msg = rest, ""
	}
	// CRI allows several tags joined by ':'; the first says full or partial.
	first, _, _ := strings.Cut(tag, ":")
	if first != TagFull && first != TagPartial {
		return Entry{}, fmt.Errorf("%w: tag %q is not F or P", ErrMalformed, clip(tag))
	}
	return Entry{Time: t, Stream: stream, Partial: first == TagPartial, Message: msg}, nil
}

// Format renders e as a log line, newline included.
func (e Entry) Format() string {
	tag := TagFull
	if e.Partial {
		tag = TagPartial
	}
	return e.Time.UTC().Format(TimeFormat) + " " + e.Stream + " " + tag + " " + e.Message + "\n"
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
