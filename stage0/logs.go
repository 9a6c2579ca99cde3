package stage0

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/orbit-pods/orbit/pod"
	"github.com/orbit-pods/orbit/pod/applog"
	"github.com/orbit-pods/orbit/pod/state"
)

// LogOptions select what Logs gives.
type LogOptions struct {
	// App is the app whose output to give; empty is every app's.
	App string
	// Follow keeps giving lines as the apps write them, until the pod
	// exits or the context ends.
	Follow bool
	// Since drops lines older than it; Tail, when positive, starts each
	// app's log at its last Tail lines.
	Since time.Time
	Tail  int
	// Malformed is told of log lines that do not parse; nil skips them.
	Malformed func(file string, line int, err error)
}

// LogLine is one line an app wrote: parts of a line split in the log are
// joined again.
type LogLine struct {
	App     string    `json:"app"`
	Time    time.Time `json:"time"`
	Stream  string    `json:"stream"`
	Message string    `json:"message"`
	// Partial says the line did not end: the app's output ended (or a
	// follow stopped) in its middle.
	Partial bool `json:"partial,omitempty"`
}

// ErrNoSuchApp is returned for an app the pod does not have.
var ErrNoSuchApp = errors.New("no such app")

// Logs gives fn the lines a pod's apps wrote, from their log files
// (pod/applog). It works for a running pod and an exited one until gc
// removes it. Without Follow, several apps' lines come merged in time
// order; with it, each app's lines come in order as they are read.
func (e *Env) Logs(ctx context.Context, uuid string, opts LogOptions, fn func(LogLine) error) error {
	pd, err := e.FindPod(uuid)
	if err != nil {
		return err
	}
	return PodLogs(ctx, e, pd, opts, fn)
}

// PodFinder finds pods again by UUID: a followed pod moves as it exits.
type PodFinder interface {
	FindPod(uuid string) (*state.Pod, error)
}

// PodLogs is Logs for a pod already found.
func PodLogs(ctx context.Context, pods PodFinder, pd *state.Pod, opts LogOptions, fn func(LogLine) error) error {
	m, err := pod.ReadManifest(pd.Dir().ManifestFile())
	if err != nil {
		return fmt.Errorf("pod %s: %w", pd.UUID, err)
	}
	var apps []*pod.App
	for i := range m.Apps {
		if opts.App == "" || m.Apps[i].Name == opts.App {
			apps = append(apps, &m.Apps[i])
		}
	}
	if len(apps) == 0 {
		return fmt.Errorf("pod %s has no app %q: %w", pd.UUID, opts.App, ErrNoSuchApp)
	}
	ropts := applog.ReadOptions{Since: opts.Since, Tail: opts.Tail, Malformed: opts.Malformed}
	if ropts.Malformed == nil {
		ropts.Malformed = func(string, int, error) {}
	}
	dir := pd.Dir()
	if !opts.Follow {
		var all []LogLine
		for _, a := range apps {
			j := joiner{app: a.Name, fn: func(l LogLine) error { all = append(all, l); return nil }}
			if err := applog.Read(dir.LogFile(a), ropts, j.add); err != nil {
				return fmt.Errorf("app %s: %w", a.Name, err)
			}
			if err := j.flush(); err != nil {
				return err
			}
		}
		sort.SliceStable(all, func(i, k int) bool { return all[i].Time.Before(all[k].Time) })
		for _, l := range all {
			if err := fn(l); err != nil {
				return err
			}
		}
		return nil
	}
	done := func() bool { return podFinished(pods, pd.UUID) }
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	for _, a := range apps {
		g.Go(func() error {
			j := joiner{app: a.Name, fn: func(l LogLine) error {
				mu.Lock()
				defer mu.Unlock()
				return fn(l)
			}}
			if err := applog.Follow(gctx, dir.LogFile(a), ropts, done, j.add); err != nil {
				return fmt.Errorf("app %s: %w", a.Name, err)
			}
			return j.flush()
		})
	}
	return g.Wait()
}

// podFinished reports whether a pod will write no more logs: it has
// exited, its supervisor died, or it is gone.
func podFinished(pods PodFinder, uuid string) bool {
	pd, err := pods.FindPod(uuid)
	if err != nil {
		return errors.Is(err, fs.ErrNotExist) || errors.Is(err, state.ErrNotFound)
	}
	info, err := Inspect(pd)
	if err != nil {
		return errors.Is(err, fs.ErrNotExist)
	}
	switch info.State {
	case ShowEmbryo, ShowPreparing, ShowPrepared, ShowRunning:
		return false
	}
	return true
}

// joiner joins the parts of split lines, per stream.
type joiner struct {
	app     string
	fn      func(LogLine) error
	pending map[string]*LogLine
}

func (j *joiner) add(e applog.Entry) error {
	if j.pending == nil {
		j.pending = map[string]*LogLine{}
	}
	l := j.pending[e.Stream]
	if l == nil {
		l = &LogLine{App: j.app, Time: e.Time, Stream: e.Stream}
	}
	l.Message += e.Message
	if e.Partial {
		j.pending[e.Stream] = l
		return nil
	}
	delete(j.pending, e.Stream)
	return j.fn(*l)
}

// flush gives what is left of unfinished lines.
func (j *joiner) flush() error {
	for _, s := range []string{applog.Stdout, applog.Stderr} {
		if l := j.pending[s]; l != nil {
			l.Partial = true
			delete(j.pending, s)
			if err := j.fn(*l); err != nil {
				return err
			}
		}
	}
	return nil
}
