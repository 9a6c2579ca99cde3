// Command orbit-pod-init is PID 1 of every pod: it holds the namespaces the
// apps share (pid, net, ipc, uts) and reaps the orphans they leave. It runs
// alone in a root of its own and does nothing else, so it stays small; it is
// built static because that root holds no libraries. When it exits, the
// kernel kills whatever is left in the pod's PID namespace, which is how
// stage1 makes sure nothing of a pod outlives it.
package main

import (
	"os"
	"os/signal"

	"golang.org/x/sys/unix"
)

func main() {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, unix.SIGTERM, unix.SIGINT, unix.SIGCHLD)
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
