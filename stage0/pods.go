package stage0

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/orbit-pods/orbit/pod"
	"github.com/orbit-pods/orbit/pod/state"
)

// ErrNotRunning and ErrStillRunning are returned when a command needs a
// pod in the other condition.
var (
	ErrNotRunning   = errors.New("pod is not running")
	ErrStillRunning = errors.New("pod is still running")
)

// FindPod finds a pod by UUID or UUID prefix.
func (e *Env) FindPod(uuid string) (*state.Pod, error) {
	pods, err := e.Pods()
	if err != nil {
		return nil, err
	}
	return pods.Find(uuid)
}

// Status inspects a pod, waiting first as asked: until it exits (wait) or
// until it runs (waitReady); a zero timeout waits for ever.
func (e *Env) Status(ctx context.Context, uuid string, wait, waitReady bool, timeout time.Duration) (*PodInfo, error) {
	pd, err := e.FindPod(uuid)
	if err != nil {
		return nil, err
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	for {
		info, err := Inspect(pd)
		if err != nil {
			return nil, err
		}
		done := true
		switch {
		case wait:
			done = info.State == ShowExited || info.State == ShowDead || info.State == ShowGarbage
		case waitReady:
			done = info.State == ShowRunning && info.PID != 0
			if info.State == ShowExited || info.State == ShowDead {
				return info, fmt.Errorf("pod %s is %s, it will not become ready", pd.UUID, info.State)
			}
		}
		if done {
			return info, nil
		}
		select {
		case <-ctx.Done():
			return info, fmt.Errorf("pod %s is still %s: %w", pd.UUID, info.State, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
		if pd, err = e.FindPod(pd.UUID); err != nil { // it may have moved
			return nil, err
		}
	}
}

// Stop asks a running pod's supervisor to stop it (SIGTERM: the apps get
// the pod's stop timeout), or with force kills the pod's init, which takes
// every app with it at once.
func (e *Env) Stop(uuid string, force bool) (*state.Pod, error) {
	pd, err := e.FindPod(uuid)
	if err != nil {
		return nil, err
	}
	info, err := Inspect(pd)
	if err != nil {
		return nil, err
	}
	if info.State != ShowRunning {
		return pd, fmt.Errorf("pod %s is %s: %w", pd.UUID, info.State, ErrNotRunning)
	}
	file, sig := pd.Dir().SupervisorPIDFile(), syscall.SIGTERM
	if force {
		file, sig = pd.Dir().PIDFile(), syscall.SIGKILL
	}
	pid, err := readPID(file)
	if err != nil {
		return pd, fmt.Errorf("pod %s has not started yet: %w", pd.UUID, err)
	}
	// The pod must still be locked, so the PID is still its process's.
	if locked, _ := pd.IsLocked(); !locked {
		return pd, fmt.Errorf("pod %s: %w", pd.UUID, ErrNotRunning)
	}
	if err := unix.Kill(pid, sig); err != nil && !errors.Is(err, unix.ESRCH) {
		return pd, fmt.Errorf("signal pod %s: %w", pd.UUID, err)
	}
	return pd, nil
}

func readPID(file string) (int, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// Remove deletes a pod that is not running now, whatever the grace period.
func (e *Env) Remove(uuid string) error {
	pd, err := e.FindPod(uuid)
	if err != nil {
		return err
	}
	if err := pd.Lock(false); err != nil {
		if errors.Is(err, state.ErrLocked) {
			return fmt.Errorf("pod %s: %w (stop it first)", pd.UUID, ErrStillRunning)
		}
		return err
	}
	defer pd.Unlock()
	switch pd.State {
	case state.Run, state.Prepared, state.ExitedGarbage:
		if err := pd.Transition(state.Garbage); err != nil {
			return err
		}
	}
	if err := e.stage1GC(pd); err != nil {
		return err
	}
	return pd.Remove()
}

// Manifest reads a pod's manifest.
func (e *Env) Manifest(uuid string) ([]byte, error) {
	pd, err := e.FindPod(uuid)
	if err != nil {
		return nil, err
	}
	return os.ReadFile(pd.Dir().ManifestFile())
}

// Enter execs stage1 to run args inside app of a running pod (the only
// app when app is empty). It returns only on error.
func (e *Env) Enter(uuid, app string, args []string) error {
	pd, err := e.FindPod(uuid)
	if err != nil {
		return err
	}
	info, err := Inspect(pd)
	if err != nil {
		return err
	}
	if info.State != ShowRunning {
		return fmt.Errorf("pod %s is %s: %w", pd.UUID, info.State, ErrNotRunning)
	}
	m, err := pod.ReadManifest(pd.Dir().ManifestFile())
	if err != nil {
		return err
	}
	if app == "" {
		if len(m.Apps) == 0 {
			return fmt.Errorf("pod %s has no apps", pd.UUID)
		}
		if len(m.Apps) > 1 {
			names := make([]string, 0, len(m.Apps))
			for _, a := range m.Apps {
				names = append(names, a.Name)
			}
			return fmt.Errorf("pod %s has several apps (%s): choose one with --app", pd.UUID, strings.Join(names, ", "))
		}
		app = m.Apps[0].Name
	}
	if len(args) == 0 {
		args = []string{"/bin/sh"}
	}
	argv := append([]string{m.Stage1, "enter",
		"--abi=" + strconv.Itoa(Stage1ABIVersion),
		"--pod-dir=" + string(pd.Dir()), "--app=" + app, "--"}, args...)
	err = syscall.Exec(m.Stage1, argv, os.Environ())
	return fmt.Errorf("exec stage1 %s: %w", m.Stage1, err)
}

// RunPreparedUUID runs a pod that `prepare` made.
func (e *Env) RunPreparedUUID(uuid string) error {
	pd, err := e.FindPod(uuid)
	if err != nil {
		return err
	}
	if pd.State != state.Prepared {
		return fmt.Errorf("pod %s is %s, not prepared", pd.UUID, pd.State)
	}
	if err := pd.Lock(false); err != nil {
		return err
	}
	m, err := pod.ReadManifest(pd.Dir().ManifestFile())
	if err != nil {
		pd.Unlock()
		return err
	}
	return e.RunPrepared(pd, m.Stage1)
}
