package stage0

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/orbit-pods/orbit/internal/faultpoint"
	"github.com/orbit-pods/orbit/network"
	"github.com/orbit-pods/orbit/pod/state"
)

// Stage1ABIVersion is the stage0/stage1 interface version stage0 speaks.
const Stage1ABIVersion = 1

// RunPrepared moves a prepared pod to run and execs its stage1, which
// becomes this process: it only returns on error, after which the pod has
// been removed. The pod's lock must be held.
func (e *Env) RunPrepared(pd *state.Pod, stage1 string) error {
	fail := func(err error) error {
		if rerr := network.RemoveNetNS(pd.Dir().NetNSFile()); rerr != nil {
			err = fmt.Errorf("%w (and %v)", err, rerr)
		}
		if rerr := pd.Remove(); rerr != nil {
			return fmt.Errorf("%w (and %v)", err, rerr)
		}
		return err
	}
	if err := pd.Transition(state.Run); err != nil {
		return fail(err)
	}
	faultpoint.Hit("run.state-run")
	netEnv, err := e.createNetNS(pd)
	if err != nil {
		return fail(err)
	}
	faultpoint.Hit("run.netns-made")
	lock := pd.LockFile()
	// The lock descriptor crosses exec: stage1 holds the lock from here.
	if _, err := unix.FcntlInt(lock.Fd(), unix.F_SETFD, 0); err != nil {
		return fail(fmt.Errorf("pass pod lock to stage1: %w", err))
	}
	args := []string{stage1, "run",
		"--abi=" + strconv.Itoa(Stage1ABIVersion),
		"--pod-dir=" + string(pd.Dir()),
		"--lock-fd=" + strconv.Itoa(int(lock.Fd())),
	}
	if e.Debug {
		args = append(args, "--debug")
	}
	// The pod gets a mount namespace of its own, slave to the host's, so
	// that its overlay mounts vanish with it whatever way it ends. Mount
	// namespaces are per thread in Go: unshare on this locked thread and
	// exec from it, which makes its namespace the new program's.
	runtime.LockOSThread()
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		runtime.UnlockOSThread()
		return fail(fmt.Errorf("new mount namespace for the pod: %w", err))
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
		return fail(fmt.Errorf("make the pod's mounts private: %w", err))
	}
	err = syscall.Exec(stage1, args, append(os.Environ(), netEnv...))
	return fail(fmt.Errorf("exec stage1 %s: %w", stage1, err))
}
