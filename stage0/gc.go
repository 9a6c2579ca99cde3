package stage0

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"time"

	"github.com/orbit-pods/orbit/pod"
	"github.com/orbit-pods/orbit/pod/state"
)

// GCOptions tune GC.
type GCOptions struct {
	// GracePeriod is how long an exited pod is kept (for status and logs)
	// before it is removed.
	GracePeriod time.Duration
	// ExpirePrepared is how long a prepared pod that was never run is kept.
	ExpirePrepared time.Duration
	// Log receives one line per pod collected.
	Log io.Writer
}

// embryoGrace protects a pod being created: its lock is taken right after
// its directory is made, and gc must not take that instant for abandonment.
const embryoGrace = 10 * time.Second

// GC collects pods: those whose supervisor died are marked exited; exited
// pods past the grace period, prepared pods past their expiry, and pods
// abandoned while being made are removed, after stage1 has released what
// they held (processes, mounts, cgroups). Pods locked by a live process are
// never touched.
func (e *Env) GC(ctx context.Context, o GCOptions) error {
	pods, err := e.Pods()
	if err != nil {
		return err
	}
	all, err := pods.List()
	if err != nil {
		return err
	}
	var errs []error
	for _, pd := range all {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := e.gcPod(pd, o); err != nil {
			errs = append(errs, fmt.Errorf("pod %s: %w", pd.UUID, err))
		}
	}
	return errors.Join(errs...)
}

func (e *Env) gcPod(pd *state.Pod, o GCOptions) error {
	since, err := pd.Since()
	if err != nil {
		return nil // gone meanwhile
	}
	age := time.Since(since)
	switch pd.State {
	case state.Embryo, state.Prepare:
		if age < embryoGrace {
			return nil
		}
	case state.Prepared:
		if age < o.ExpirePrepared {
			return nil
		}
	case state.Run, state.ExitedGarbage, state.Garbage:
	}
	if err := pd.Lock(false); err != nil {
		if errors.Is(err, state.ErrLocked) || errors.Is(err, state.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			return nil // alive, or moved on by someone else
		}
		return err
	}
	defer pd.Unlock()
	if pd.State == state.Run {
		// Its supervisor died: release what the pod holds now, and keep it
		// as exited for the grace period like any other.
		if err := e.stage1GC(pd); err != nil {
			return err
		}
		if err := pd.Transition(state.ExitedGarbage); err != nil {
			return err
		}
		fmt.Fprintf(logOrDiscard(o.Log), "Pod %s: supervisor died, marked exited\n", pd.UUID)
		age = 0
	}
	if pd.State == state.ExitedGarbage {
		if age < o.GracePeriod {
			return nil
		}
		if err := pd.Transition(state.Garbage); err != nil {
			return err
		}
	}
	if err := e.stage1GC(pd); err != nil {
		return err
	}
	if err := pd.Remove(); err != nil {
		return err
	}
	fmt.Fprintf(logOrDiscard(o.Log), "Garbage collected pod %s\n", pd.UUID)
	return nil
}

// stage1GC asks the pod's stage1 to release what the pod holds.
func (e *Env) stage1GC(pd *state.Pod) error {
	m, err := pod.ReadManifest(pd.Dir().ManifestFile())
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil // never got as far as having a stage1
		}
		return err
	}
	if _, err := os.Stat(pd.Dir().Stage1Dir()); errors.Is(err, os.ErrNotExist) {
		return nil // stage1 never ran
	}
	if _, err := os.Stat(pd.Dir().ReleasedFile()); err == nil {
		return nil // stage1 released everything when the pod exited
	}
	cmd := exec.Command(m.Stage1, "gc",
		fmt.Sprintf("--abi=%d", Stage1ABIVersion), "--pod-dir="+string(pd.Dir()))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("stage1 gc: %w: %s", err, out)
	}
	return nil
}

func logOrDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}
