package faultpoint

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The helper process stops itself at the named step; the test sees it
// stopped, continues it, and it goes on to exit normally.
func TestHitStopsAtTheNamedStepOnly(t *testing.T) {
	if os.Getenv("FAULTPOINT_HELPER") == "1" {
		Hit("not-this-one")
		Hit("this-one")
		os.Exit(0)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHitStopsAtTheNamedStepOnly$")
	cmd.Env = append(os.Environ(), "FAULTPOINT_HELPER=1", Env+"=this-one")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill() //nolint:errcheck
	deadline := time.Now().Add(30 * time.Second)
	for !Stopped(cmd.Process.Pid) {
		if time.Now().After(deadline) {
			t.Fatal("the helper never stopped at its fault point")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper after SIGCONT: %v", err)
	}
}

// Stopped reads a process's state from /proc.
func Stopped(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && len(s) > i+2 && s[i+2] == 'T'
}
