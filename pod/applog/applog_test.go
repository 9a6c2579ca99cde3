package applog

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func fixedClock() func() time.Time {
	t := time.Date(2026, 11, 23, 11, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t = t.Add(time.Millisecond)
		return t
	}
}

func readAll(t *testing.T, path string, opts ReadOptions) []Entry {
	t.Helper()
	var got []Entry
	if err := Read(path, opts, func(e Entry) error { got = append(got, e); return nil }); err != nil {
		t.Fatal(err)
	}
	return got
}

func messages(es []Entry) string {
	var b strings.Builder
	for _, e := range es {
		tag := "F"
		if e.Partial {
			tag = "P"
		}
		fmt.Fprintf(&b, "%s %s %s\n", e.Stream, tag, e.Message)
	}
	return b.String()
}

func TestParseLine(t *testing.T) {
	for _, c := range []struct {
		line string
		want Entry
		bad  bool
	}{
		{line: "2026-11-23T11:14:46.123456789Z stdout F hello world", want: Entry{Stream: "stdout", Message: "hello world"}},
		{line: "2026-11-23T11:14:46Z stderr P part ", want: Entry{Stream: "stderr", Partial: true, Message: "part "}},
		{line: "2026-11-23T11:14:46Z stdout F", want: Entry{Stream: "stdout"}},
		{line: "2026-11-23T11:14:46Z stdout F:x msg", want: Entry{Stream: "stdout", Message: "msg"}},
		{line: "yesterday stdout F x", bad: true},
		{line: "2026-11-23T11:14:46Z stdin F x", bad: true},
		{line: "2026-11-23T11:14:46Z stdout Q x", bad: true},
		{line: "", bad: true},
	} {
		e, err := ParseLine(c.line)
		if c.bad {
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("ParseLine(%q): err %v, want ErrMalformed", c.line, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseLine(%q): %v", c.line, err)
			continue
		}
		if e.Stream != c.want.Stream || e.Partial != c.want.Partial || e.Message != c.want.Message {
			t.Errorf("ParseLine(%q) = %+v, want %+v", c.line, e, c.want)
		}
	}
	e := Entry{Time: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), Stream: Stderr, Message: "x y"}
	if got := e.Format(); got != "2026-01-02T03:04:05.000000006Z stderr F x y\n" {
		t.Errorf("Format = %q", got)
	}
}

func TestStreamsWriteLinesAndSplitLongOnes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "logs", "app.log")
	lf, err := Create(path, Options{MaxLineLen: 5, Now: fixedClock()})
	if err != nil {
		t.Fatal(err)
	}
	var journal strings.Builder
	out, errw := lf.Stream(Stdout), lf.Stream(Stderr)
	out.Lines = &journal
	fmt.Fprint(out, "hel")
	fmt.Fprint(errw, "oops\n")
	fmt.Fprint(out, "lo\nabcdefghijkl\n\nlast")
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	if err := errw.Close(); err != nil {
		t.Fatal(err)
	}
	lf.Close()
	want := "stderr F oops\nstdout F hello\nstdout P abcde\nstdout P fghij\nstdout F kl\nstdout F \nstdout F last\n"
	if got := messages(readAll(t, path, ReadOptions{})); got != want {
		t.Errorf("log:\n%s\nwant:\n%s", got, want)
	}
	if got := journal.String(); got != "hello\nabcdefghijkl\n\nlast" {
		t.Errorf("journal side %q", got)
	}
}

func TestRotationKeepsNFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.log")
	// Each line is 45 bytes: 3 fit in 150.
	lf, err := Create(path, Options{MaxSize: 150, MaxFiles: 3, Now: fixedClock()})
	if err != nil {
		t.Fatal(err)
	}
	w := lf.Stream(Stdout)
	for i := 0; i < 20; i++ {
		fmt.Fprintf(w, "line-%02d\n", i)
	}
	lf.Close()
	for _, f := range []string{path, path + ".1", path + ".2"} {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() > 150 {
			t.Errorf("%s is %d bytes, over the limit", f, st.Size())
		}
	}
	if _, err := os.Stat(path + ".3"); !os.IsNotExist(err) {
		t.Errorf("%s.3 kept: %v", path, err)
	}
	got := readAll(t, path, ReadOptions{})
	// 3 files of 3 lines (the current one with 2) are the last 8 lines.
	if len(got) != 8 || got[0].Message != "line-12" || got[7].Message != "line-19" {
		t.Errorf("after rotation:\n%s", messages(got))
	}
	for i := 1; i < len(got); i++ {
		if !got[i].Time.After(got[i-1].Time) {
			t.Errorf("entries out of order: %v then %v", got[i-1].Time, got[i].Time)
		}
	}
}

func TestReadTailAndSince(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.log")
	clock := fixedClock()
	lf, err := Create(path, Options{MaxSize: 100, MaxFiles: 10, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	w := lf.Stream(Stdout)
	var times []time.Time
	for i := 0; i < 10; i++ {
		fmt.Fprintf(w, "m%d\n", i)
		got := readAll(t, path, ReadOptions{})
		times = append(times, got[len(got)-1].Time)
	}
	lf.Close()
	if got := messages(readAll(t, path, ReadOptions{Tail: 3})); got != "stdout F m7\nstdout F m8\nstdout F m9\n" {
		t.Errorf("tail 3:\n%s", got)
	}
	if got := readAll(t, path, ReadOptions{Since: times[6]}); len(got) != 4 || got[0].Message != "m6" {
		t.Errorf("since m6:\n%s", messages(got))
	}
	if got := readAll(t, path, ReadOptions{Tail: 100}); len(got) != 10 {
		t.Errorf("tail 100 gave %d entries", len(got))
	}
}

func TestReadMissingLogIsEmpty(t *testing.T) {
	if got := readAll(t, filepath.Join(t.TempDir(), "none.log"), ReadOptions{}); len(got) != 0 {
		t.Errorf("got %v", got)
	}
}

func TestReadMalformedLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.log")
	os.WriteFile(path, []byte("2026-11-23T11:14:46Z stdout F ok\ngarbage\n2026-11-23T11:14:47Z stdout F ok2\n"), 0o644)
	err := Read(path, ReadOptions{}, func(Entry) error { return nil })
	if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "app.log:2") {
		t.Errorf("err %v, want ErrMalformed at line 2", err)
	}
	var bad []int
	got := readAll(t, path, ReadOptions{Malformed: func(_ string, n int, _ error) { bad = append(bad, n) }})
	if len(got) != 2 || len(bad) != 1 || bad[0] != 2 {
		t.Errorf("got %v, malformed %v", got, bad)
	}
}

// TestFollowAcrossRotation follows a log while a writer fills and rotates
// it (keeping only 2 files), and stops once told the writer is done: every
// line arrives once, in order.
func TestFollowAcrossRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.log")
	lf, err := Create(path, Options{MaxSize: 200, MaxFiles: 2, Now: fixedClock()})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	finished := false
	seen := make(chan string, 1000)
	errc := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		errc <- Follow(ctx, path, ReadOptions{Poll: time.Millisecond},
			func() bool { mu.Lock(); defer mu.Unlock(); return finished },
			func(e Entry) error { seen <- e.Message; return nil })
	}()
	w := lf.Stream(Stdout)
	var msgs []string
	const n = 200
	for i := 0; i < n; i++ {
		fmt.Fprintf(w, "line-%03d\n", i)
		// Four lines fit in a file: wait for the follower to have them
		// before the writer rotates twice, so it follows rotations live.
		if i%4 == 3 {
			for len(msgs) < i+1 {
				msgs = append(msgs, <-seen)
			}
		}
	}
	fmt.Fprint(w, "the end\n")
	lf.Close()
	mu.Lock()
	finished = true
	mu.Unlock()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	close(seen)
	for m := range seen {
		msgs = append(msgs, m)
	}
	if len(msgs) != n+1 {
		t.Fatalf("followed %d lines, want %d", len(msgs), n+1)
	}
	for i := 0; i < n; i++ {
		if want := fmt.Sprintf("line-%03d", i); msgs[i] != want {
			t.Fatalf("line %d is %q, want %q", i, msgs[i], want)
		}
	}
	if msgs[n] != "the end" {
		t.Errorf("last line %q", msgs[n])
	}
}

func TestFollowWaitsForTheLogToAppear(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.log")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	seen := make(chan string, 10)
	errc := make(chan error, 1)
	go func() {
		errc <- Follow(ctx, path, ReadOptions{Poll: time.Millisecond}, nil,
			func(e Entry) error { seen <- e.Message; return nil })
	}()
	lf, err := Create(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(lf.Stream(Stderr), "hi\n")
	lf.Close()
	if m := <-seen; m != "hi" {
		t.Errorf("got %q", m)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}
