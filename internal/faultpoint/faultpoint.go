// Package faultpoint lets the fault tests stop Orbit at a named step of its
// work, so that they can kill it exactly there (kill -9 between a blob's
// commit and its index record, say) instead of at a random moment.
//
// A process whose ORBIT_FAULTPOINT names a step stops itself with SIGSTOP
// when it reaches that step; the test sees it stopped (state T in
// /proc/PID/stat) and sends what it likes. Without the variable, a step
// costs one environment lookup. Stopping oneself grants nothing: any
// process could do it.
package faultpoint

import (
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// Env is the variable that names the step to stop at.
const Env = "ORBIT_FAULTPOINT"

// Hit stops the process if step is the one named by ORBIT_FAULTPOINT.
// It returns when the process is continued.
//
// The signal goes to the calling thread (tgkill), not to the process: sent
// with kill(2), another thread may take it and the caller runs on for a
// moment before the group stop reaches it, past the step and into the next
// one (a kill there left index.db created by the next step but empty).
// Sent to itself, the thread starts the group stop on its way out of the
// system call and cannot go further.
func Hit(step string) {
	if v, ok := os.LookupEnv(Env); ok && v == step {
		runtime.LockOSThread()
		_ = unix.Tgkill(os.Getpid(), unix.Gettid(), unix.SIGSTOP)
		runtime.UnlockOSThread()
	}
}
