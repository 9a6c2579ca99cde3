// Command sdapp is the app of the systemd tests in the VM
// (functional-tests/vm_units_test.go), built static and packed as an image:
//
//	sdapp notify FILE   wait for FILE to exist, then send READY=1 and a
//	                    STATUS= to NOTIFY_SOCKET, and run until SIGTERM
//	sdapp listen        answer each connection on the socket-activated
//	                    listener with what it was given
//	sdapp mem MB        allocate and touch MB megabytes, then say so
package main

import (
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) < 2 {
		fail(fmt.Errorf("usage: sdapp notify FILE | listen | mem MB"))
	}
	switch os.Args[1] {
	case "notify":
		notify(os.Args[2])
	case "listen":
		listen()
	case "mem":
		mem(os.Args[2])
	default:
		fail(fmt.Errorf("unknown mode %q", os.Args[1]))
	}
}

func notify(file string) {
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	fmt.Printf("sdapp: waiting for %s, NOTIFY_SOCKET=%s\n", file, os.Getenv("NOTIFY_SOCKET"))
	for {
		if _, err := os.Stat(file); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	fmt.Printf("sdapp: sending READY=1 at monotonic %d\n", ts.Sec*1e6+ts.Nsec/1e3)
	ok, err := daemon.SdNotify(false, "READY=1\nSTATUS=ready from sdapp\nMAINPID=1")
	if err != nil || !ok {
		fail(fmt.Errorf("sd_notify: sent %v: %v", ok, err))
	}
	<-term
	fmt.Println("sdapp: stopping")
}

func listen() {
	// Listeners unsets them.
	env := fmt.Sprintf("LISTEN_PID=%s pid=%d LISTEN_FDS=%s LISTEN_FDNAMES=%s",
		os.Getenv("LISTEN_PID"), os.Getpid(), os.Getenv("LISTEN_FDS"), os.Getenv("LISTEN_FDNAMES"))
	ls, err := activation.Listeners()
	if err != nil || len(ls) == 0 {
		fail(fmt.Errorf("no socket-activated listener (%s): %v", env, err))
	}
	fmt.Printf("sdapp: listening on %d sockets\n", len(ls))
	for {
		c, err := ls[0].Accept()
		if err != nil {
			fail(err)
		}
		fmt.Fprintf(c, "sdapp-activated %s\n", env)
		c.Close()
	}
}

func mem(mb string) {
	n, err := strconv.Atoi(mb)
	if err != nil {
		fail(err)
	}
	fmt.Printf("sdapp: allocating %d MB\n", n)
	var keep [][]byte
	for i := 0; i < n; i++ {
		b := make([]byte, 1<<20)
		for j := 0; j < len(b); j += 4096 {
			b[j] = 1
		}
		keep = append(keep, b)
	}
	fmt.Printf("sdapp: allocated %d MB\n", len(keep))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "sdapp:", err)
	os.Exit(1)
}
