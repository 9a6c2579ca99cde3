// Command orbit-pod-init is PID 1 of every pod: it holds the namespaces the
// apps share (pid, net, ipc, uts) and reaps the orphans they leave. It runs
// as nobody with no capabilities, alone in a read-only root of its own, and
// does nothing else, so it stays small; it is
// built static because that root holds no libraries. When it exits, the
// kernel kills whatever is left in the pod's PID namespace, which is how
// stage1 makes sure nothing of a pod outlives it: descriptor 3 is a pipe
// from stage1, and when it reads end-of-file the supervisor is gone and the
// init exits, taking the pod with it. Stop signals are not its business:
// stage1 stops the apps, and a unit's stop that signals every process in
// its cgroup must not take the pod down before the apps had their chance.
//
// The same binary, bind-mounted into an app as `... listen-exec -- CMD`,
// sets LISTEN_PID to its own PID and execs CMD: that is how a
// socket-activated app learns that the LISTEN_FDS it sees are its own.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) > 3 && os.Args[1] == "listen-exec" && os.Args[2] == "--" {
		listenExec(os.Args[3:])
	}
	// Not dumpable: no process of the pod, whatever its user, can open
	// this one's /proc files (root, exe, fds) or ptrace it without
	// CAP_SYS_PTRACE.
	_ = unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	signal.Ignore(unix.SIGTERM, unix.SIGINT, unix.SIGHUP)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, unix.SIGCHLD)
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
	for range sigs {
		for {
			var ws unix.WaitStatus
			pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}

func listenExec(args []string) {
	path, err := exec.LookPath(args[0])
	if err == nil {
		env := append(os.Environ(), "LISTEN_PID="+strconv.Itoa(os.Getpid()))
		err = unix.Exec(path, args, env)
	}
	fmt.Fprintf(os.Stderr, "orbit-pod-init: exec %s: %v\n", args[0], err)
	os.Exit(127)
}
