package stage1

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/opencontainers/runc/libcontainer"

	"github.com/orbit-pods/orbit/pod"
	"github.com/orbit-pods/orbit/pod/applog"
)

// Every app's stdout and stderr are pipes to stage1, which copies what
// comes out of them twice: to its own stdout and stderr, a whole line at a
// time (the journal of a unit that runs `orbit run` gets the apps' lines,
// never two apps' halves mixed), and to the app's log file in CRI's format
// (pod/applog), which `orbit logs` and the API read while the pod runs and
// after it exited, until gc removes the pod. An interactive app's output
// goes to stage1's terminal as it comes, and to the log as well.

// logSet is the pod's open log files and the copiers writing them.
type logSet struct {
	mu      sync.Mutex
	files   []*applog.File
	copiers sync.WaitGroup
}

// openLog opens a's log file.
func (s *supervisor) openLog(a *pod.App) (*applog.File, error) {
	opts := applog.Options{}
	if a.Log != nil {
		opts.MaxSize, opts.MaxFiles = a.Log.MaxSize, a.Log.MaxFiles
	}
	f, err := applog.Create(s.dir.LogFile(a), opts)
	if err != nil {
		return nil, fmt.Errorf("app %s: %w", a.Name, err)
	}
	s.logs.mu.Lock()
	s.logs.files = append(s.logs.files, f)
	s.logs.mu.Unlock()
	return f, nil
}

// loggedStdio gives p a pipe for stdout and one for stderr, copied to a's
// log and to stage1's own. The returned function closes stage1's copy of
// the pipes' write ends, once p has started or failed to.
func (s *supervisor) loggedStdio(a *pod.App, p *libcontainer.Process) (func(), error) {
	lf, err := s.openLog(a)
	if err != nil {
		return nil, err
	}
	var ends []*os.File
	closeEnds := func() {
		for _, f := range ends {
			f.Close()
		}
	}
	var ap *attachPoint
	if s.attach != nil {
		var stdin *os.File
		if ap, stdin, err = s.openAttach(a, p); err != nil {
			return nil, fmt.Errorf("app %s: %w", a.Name, err)
		}
		if stdin != nil {
			ends = append(ends, stdin)
		}
	}
	for i, st := range []struct {
		name   string
		out    *os.File
		set    func(*os.File)
		attach byte
	}{
		{applog.Stdout, os.Stdout, func(f *os.File) { p.Stdout = f }, pod.AttachStdout},
		{applog.Stderr, os.Stderr, func(f *os.File) { p.Stderr = f }, pod.AttachStderr},
	} {
		r, w, err := os.Pipe()
		if err != nil {
			closeEnds()
			if ap != nil {
				ap.streamsEnded(2 - i)
			}
			return nil, fmt.Errorf("app %s: %s pipe: %w", a.Name, st.name, err)
		}
		ends = append(ends, w)
		st.set(w)
		sw := lf.Stream(st.name)
		var raw io.Writer
		if s.m.Interactive {
			raw = st.out // as it comes: a prompt has no newline yet
		} else {
			sw.Lines = st.out
		}
		if ap != nil {
			raw = attachStream{ap, st.attach}
		}
		s.logs.copiers.Add(1)
		go func() {
			defer s.logs.copiers.Done()
			defer r.Close()
			copyOutput(r, sw, raw)
			if ap != nil {
				ap.streamsEnded(1)
			}
		}()
	}
	return closeEnds, nil
}

// copyOutput copies an app's stream to its log (and to raw, when set) until
// every holder of the pipe's write end is gone.
func copyOutput(r io.Reader, sw *applog.StreamWriter, raw io.Writer) {
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if raw != nil {
				_, _ = raw.Write(buf[:n])
			}
			if _, werr := sw.Write(buf[:n]); werr != nil {
				logWriteFailed(werr)
			}
		}
		if err != nil {
			break
		}
	}
	if err := sw.Close(); err != nil {
		logWriteFailed(err)
	}
}

var logWarnOnce sync.Once

// logWriteFailed says once that the log cannot be written (a full disk),
// and the output keeps going to stage1's stdout and stderr.
func logWriteFailed(err error) {
	logWarnOnce.Do(func() {
		fmt.Fprintf(os.Stderr, "stage1: app log: %v (output still goes to stdout/stderr)\n", err)
	})
}

// ttyLog is the log stream of an interactive app's terminal, which mixes
// stdout and stderr: it is logged as stdout.
func (s *supervisor) ttyLog(a *pod.App) (*applog.StreamWriter, error) {
	lf, err := s.openLog(a)
	if err != nil {
		return nil, err
	}
	return lf.Stream(applog.Stdout), nil
}

// closeLogs waits for the copiers to read the apps' last output and closes
// the log files. Once the pod's processes are gone the pipes have no
// writer left; a fly app's leftover child may still hold one, so the wait
// is bounded.
func (s *supervisor) closeLogs() {
	done := make(chan struct{})
	go func() {
		s.logs.copiers.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		s.logf("app output still open 2s after the apps exited: closing the logs")
	}
	s.logs.mu.Lock()
	defer s.logs.mu.Unlock()
	for _, f := range s.logs.files {
		_ = f.Close()
	}
	s.logs.files = nil
}
