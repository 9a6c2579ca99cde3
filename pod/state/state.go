// Package state keeps the pods of an Orbit data directory and moves them
// through their lifecycle. A pod's state is the directory it sits in:
//
//	embryo -> prepare -> prepared -> run -> exited-garbage -> garbage
//
// Moving a pod is a rename under its lock, so a reader never sees a pod in
// two states or half-moved. Whoever works on a pod holds an exclusive flock
// on the pod's directory; stage0 takes it when the pod is made and hands the
// descriptor to stage1 across exec, and stage1 holds it as long as it
// supervises. So with no daemon to ask, a pod in "run" whose lock can be
// taken has lost its supervisor.
package state

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sys/unix"

	"github.com/orbit-pods/orbit/pod"
)

// State is a pod's lifecycle state, and the name of the directory of pods in it.
type State string

// The states, in lifecycle order.
const (
	Embryo        State = "embryo"
	Prepare       State = "prepare"
	Prepared      State = "prepared"
	Run           State = "run"
	ExitedGarbage State = "exited-garbage"
	Garbage       State = "garbage"
)

// All lists the states in lifecycle order.
var All = []State{Embryo, Prepare, Prepared, Run, ExitedGarbage, Garbage}

// Errors callers decide on.
var (
	ErrNotFound  = errors.New("pod not found")
	ErrAmbiguous = errors.New("pod UUID prefix is ambiguous")
	ErrLocked    = errors.New("pod is locked by another process")
)

// Pods is the pods directory of an Orbit data directory.
type Pods struct {
	dir string
}

// Open returns the pods under dir (normally /var/lib/orbit/pods), creating
// the state directories.
func Open(dir string) (*Pods, error) {
	for _, s := range All {
		if err := os.MkdirAll(filepath.Join(dir, string(s)), 0o711); err != nil {
			return nil, fmt.Errorf("create pod state directory: %w", err)
		}
	}
	return &Pods{dir: dir}, nil
}

// Pod is a pod directory in some state, possibly with its lock held.
type Pod struct {
	UUID  string
	State State
	pods  *Pods
	lock  *os.File
}

// Dir is the pod's directory in its current state.
func (p *Pod) Dir() pod.Dir {
	return pod.Dir(filepath.Join(p.pods.dir, string(p.State), p.UUID))
}

// LockFile is the open, locked directory, or nil when the lock is not held.
func (p *Pod) LockFile() *os.File { return p.lock }

// Create makes a new pod in the embryo state, with its lock held.
func (p *Pods) Create() (*Pod, error) {
	id := uuid.New().String()
	pd := &Pod{UUID: id, State: Embryo, pods: p}
	if err := os.Mkdir(string(pd.Dir()), 0o700); err != nil {
		return nil, fmt.Errorf("create pod directory: %w", err)
	}
	if err := pd.Lock(false); err != nil {
		os.Remove(string(pd.Dir()))
		return nil, err
	}
	return pd, nil
}

// Lock takes the pod's exclusive lock; with wait false it fails with
// ErrLocked rather than wait.
func (p *Pod) Lock(wait bool) error {
	if p.lock != nil {
		return nil
	}
	f, err := os.Open(string(p.Dir()))
	if err != nil {
		return fmt.Errorf("open pod %s: %w", p.UUID, err)
	}
	how := unix.LOCK_EX
	if !wait {
		how |= unix.LOCK_NB
	}
	if err := unix.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return fmt.Errorf("pod %s: %w", p.UUID, ErrLocked)
		}
		return fmt.Errorf("lock pod %s: %w", p.UUID, err)
	}
	// The pod may have moved between finding and locking it.
	var a, b unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &a); err == nil {
		if err := unix.Stat(string(p.Dir()), &b); err != nil || a.Ino != b.Ino {
			f.Close()
			return fmt.Errorf("pod %s moved while locking: %w", p.UUID, ErrNotFound)
		}
	}
	p.lock = f
	return nil
}

// Unlock releases the lock (if held).
func (p *Pod) Unlock() {
	if p.lock != nil {
		p.lock.Close()
		p.lock = nil
	}
}

// Transition renames the pod into state to. The lock must be held.
func (p *Pod) Transition(to State) error {
	if p.lock == nil {
		return fmt.Errorf("pod %s: transition to %s without its lock", p.UUID, to)
	}
	from := p.Dir()
	dst := filepath.Join(p.pods.dir, string(to), p.UUID)
	if err := os.Rename(string(from), dst); err != nil {
		return fmt.Errorf("move pod %s from %s to %s: %w", p.UUID, p.State, to, err)
	}
	p.State = to
	// The mtime of the directory records when the pod entered its state
	// (gc's grace period counts from it).
	now := time.Now()
	_ = os.Chtimes(dst, now, now)
	return nil
}

// Remove deletes the pod's directory. The lock must be held.
func (p *Pod) Remove() error {
	if p.lock == nil {
		return fmt.Errorf("pod %s: remove without its lock", p.UUID)
	}
	if err := p.Unmount(); err != nil {
		return fmt.Errorf("remove pod %s: %w", p.UUID, err)
	}
	if err := os.RemoveAll(string(p.Dir())); err != nil {
		return fmt.Errorf("remove pod %s: %w", p.UUID, err)
	}
	p.Unlock()
	return nil
}

// Since is when the pod entered its current state.
func (p *Pod) Since() (time.Time, error) {
	fi, err := os.Stat(string(p.Dir()))
	if err != nil {
		return time.Time{}, err
	}
	return fi.ModTime(), nil
}

// IsLocked reports whether another process holds the pod's lock: for a pod
// in Run, whether its supervisor is alive.
func (p *Pod) IsLocked() (bool, error) {
	if p.lock != nil {
		return false, nil
	}
	f, err := os.Open(string(p.Dir()))
	if err != nil {
		return false, err
	}
	defer f.Close()
	err = unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return true, nil
	}
	return false, err
}

// List returns the pods in the given states (all states if none given),
// sorted by UUID within each state.
func (p *Pods) List(states ...State) ([]*Pod, error) {
	if len(states) == 0 {
		states = All
	}
	var out []*Pod
	for _, s := range states {
		ents, err := os.ReadDir(filepath.Join(p.dir, string(s)))
		if err != nil {
			return nil, fmt.Errorf("list %s pods: %w", s, err)
		}
		names := make([]string, 0, len(ents))
		for _, e := range ents {
			if e.IsDir() {
				names = append(names, e.Name())
			}
		}
		sort.Strings(names)
		for _, n := range names {
			out = append(out, &Pod{UUID: n, State: s, pods: p})
		}
	}
	return out, nil
}

// Find returns the pod whose UUID is or starts with prefix.
func (p *Pods) Find(prefix string) (*Pod, error) {
	if prefix == "" {
		return nil, fmt.Errorf("empty pod UUID: %w", ErrNotFound)
	}
	all, err := p.List()
	if err != nil {
		return nil, err
	}
	var found *Pod
	for _, pd := range all {
		if strings.HasPrefix(pd.UUID, prefix) {
			if found != nil && found.UUID != pd.UUID {
				return nil, fmt.Errorf("%q: %w", prefix, ErrAmbiguous)
			}
			found = pd
		}
	}
	if found == nil {
		return nil, fmt.Errorf("%q: %w", prefix, ErrNotFound)
	}
	return found, nil
}

// Adopt wraps a pod directory whose lock descriptor was inherited (stage1
// receives it from stage0 across exec).
func (p *Pods) Adopt(dir pod.Dir, lock *os.File) (*Pod, error) {
	st := State(filepath.Base(filepath.Dir(string(dir))))
	if filepath.Clean(filepath.Dir(filepath.Dir(string(dir)))) != filepath.Clean(p.dir) {
		return nil, fmt.Errorf("pod directory %s is not under %s", dir, p.dir)
	}
	return &Pod{UUID: filepath.Base(string(dir)), State: st, pods: p, lock: lock}, nil
}
