package reboot

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log"
	"os"
	"time"
)

// RebootRequired is the file the update agent writes when the next boot
// should be into a new slot. /run is a tmpfs, so a reboot clears it.
const RebootRequired = "/run/reboot-required"

// UpdateStatus is the update agent's status file (KEY=VALUE lines), read
// to say in the log what the reboot is for.
const UpdateStatus = "/run/orbit-update/status"

// Agent is the reboot manager of one machine.
type Agent struct {
	MachineID string
	Strategy  Strategy
	Window    Window
	// Locker is the semaphore for StrategyEtcdLock; nil otherwise.
	Locker Locker
	// RebootRequired is the file whose existence asks for a reboot.
	RebootRequired string
	// StatusFile is the update agent's status, if any (UpdateStatus).
	StatusFile string
	// Reboot starts the reboot. When it returns without error the system
	// is going down, and the agent waits to be stopped.
	Reboot func(ctx context.Context) error
	// Interval is how often the agent looks for the file and retries a
	// semaphore that is full or out of reach.
	Interval time.Duration
	Log      *log.Logger
	// Now is the clock windows are checked against (time.Now if nil).
	Now func() time.Time
}

func (a *Agent) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Run releases any slot this machine still holds from before its last
// reboot, then waits for a reboot to be required and carries it out by the
// strategy. It returns when ctx is done, or at once for StrategyOff.
func (a *Agent) Run(ctx context.Context) error {
	if a.Strategy == StrategyEtcdLock {
		if a.Locker == nil {
			return errors.New("reboot strategy etcd-lock without a semaphore")
		}
		// First of all: a machine that is up again gives back its slot,
		// so the next one can go.
		for {
			err := a.Locker.Unlock(ctx, a.MachineID)
			if err == nil {
				a.Log.Printf("machine %s is up: holds no reboot slot", a.MachineID)
				break
			}
			a.Log.Printf("releasing this machine's reboot slot (will retry): %v", err)
			if err := sleep(ctx, a.Interval); err != nil {
				return err
			}
		}
	}
	if a.Strategy == StrategyOff {
		a.Log.Printf("reboot strategy off: reboots are left to the administrator")
		return nil
	}
	a.Log.Printf("reboot strategy %s, window %s: watching %s", a.Strategy, a.Window, a.RebootRequired)
	for {
		if err := a.waitRequired(ctx); err != nil {
			return err
		}
		if w := a.Window.Wait(a.now()); w > 0 {
			a.Log.Printf("reboot required; the window %s opens in %s", a.Window, w.Round(time.Second))
			if err := sleep(ctx, w); err != nil {
				return err
			}
			continue // look again: the file may be gone, the window must be checked anew
		}
		if a.Strategy == StrategyEtcdLock {
			if err := a.Locker.Lock(ctx, a.MachineID); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				a.Log.Printf("reboot required, waiting for a slot: %v", err)
				if err := sleep(ctx, a.Interval); err != nil {
					return err
				}
				continue
			}
			a.Log.Printf("took a reboot slot")
		}
		a.Log.Printf("rebooting%s", a.updateInfo())
		if err := a.Reboot(ctx); err != nil {
			a.Log.Printf("reboot failed: %v", err)
			if a.Strategy == StrategyEtcdLock {
				if err := a.Locker.Unlock(ctx, a.MachineID); err != nil {
					a.Log.Printf("giving back the reboot slot after the failed reboot: %v", err)
				}
			}
			if err := sleep(ctx, a.Interval); err != nil {
				return err
			}
			continue
		}
		<-ctx.Done()
		return ctx.Err()
	}
}

// waitRequired returns once the reboot-required file exists.
func (a *Agent) waitRequired(ctx context.Context) error {
	for {
		_, err := os.Stat(a.RebootRequired)
		if err == nil {
			return nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("check %s: %w", a.RebootRequired, err)
		}
		if err := sleep(ctx, a.Interval); err != nil {
			return err
		}
	}
}

// updateInfo says which update the reboot is for, from the update agent's
// status file; empty when there is none.
func (a *Agent) updateInfo() string {
	if a.StatusFile == "" {
		return ""
	}
	kv := map[string]string{}
	if err := readKV(a.StatusFile, kv); err != nil || kv["NEW_VERSION"] == "" {
		return ""
	}
	return fmt.Sprintf(" into %s (slot %s, from %s)", kv["NEW_VERSION"], kv["NEW_SLOT"], kv["CURRENT_VERSION"])
}
