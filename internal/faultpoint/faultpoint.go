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
	"syscall"
)

// Env is the variable that names the step to stop at.
const Env = "ORBIT_FAULTPOINT"

// Hit stops the process if step is the one named by ORBIT_FAULTPOINT.
// It returns when the process is continued.
func Hit(step string) {
	if v, ok := os.LookupEnv(Env); ok && v == step {
		_ = syscall.Kill(os.Getpid(), syscall.SIGSTOP)
	}
}
