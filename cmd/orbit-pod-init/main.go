// Command orbit-pod-init is PID 1 of every pod: it holds the namespaces the
// apps share (pid, net, ipc, uts) and reaps the orphans they leave. It runs
// alone in a root of its own and does nothing else, so it stays small; it is
// built static because that root holds no libraries. When it exits, the
// kernel kills whatever is left in the pod's PID namespace, which is how
// stage1 makes sure nothing of a pod outlives it: descriptor 3 is a pipe
// from stage1, and when it reads end-of-file the supervisor is gone and the
// init exits, taking the pod with it.
package main

import (
	"os"
	"os/signal"

	"golang.org/x/sys/unix"
)

func main() {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, unix.SIGTERM, unix.SIGINT, unix.SIGCHLD)
	if lifeline := os.NewFile(3, "lifeline"); lifeline != nil {
		go func() {
			var b [1]byte
			for {
				if _, err := lifeline.Read(b[:]); err != nil {
					os.Exit(0)
				}
			}
		}()
	}
	for s := range sigs {
		if s != unix.SIGCHLD {
			os.Exit(0)
		}
		for {
			var ws unix.WaitStatus
			pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
