//go:build functional

package functional

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// The app commands on a sandbox pod from the CLI: add (with a stdin),
// start, attach (input in, stdout and stderr out), list, rm; attaching to
// an app that does not run is refused with its state.
func TestAppCommandsAndAttach(t *testing.T) {
	e := newEnv(t)
	e.fetchDemo()
	uuid, wait := e.startPod("--sandbox")
	name := strings.TrimSpace(e.mustOrbit("app", "add", "--stdin-once", uuid, "demo", "--exec=/bin/sh", "--",
		"-c", "read x; echo got $x; echo to-stderr >&2; read y || echo stdin-closed"))
	if r := e.orbit("app", "attach", uuid, name); r.code == 0 || !strings.Contains(r.stderr, "is created: only a running app") {
		t.Errorf("attach to a created app: %+v", r)
	}
	e.mustOrbit("app", "start", uuid, name)
	c := e.cmd("app", "attach", uuid, name)
	c.Stdin = strings.NewReader("hello\n")
	var so, se bytes.Buffer
	c.Stdout, c.Stderr = &so, &se
	if err := c.Run(); err != nil {
		t.Fatalf("attach: %v\n%s", err, se.String())
	}
	// The input's end closed the app's stdin (--stdin-once): read y saw EOF.
	if so.String() != "got hello\nstdin-closed\n" || se.String() != "to-stderr\n" {
		t.Errorf("attach: stdout %q stderr %q", so.String(), se.String())
	}
	waitFor(t, "the app to exit", 10*time.Second, func() bool {
		return strings.Contains(e.mustOrbit("app", "list", uuid), "exited  0")
	})
	if r := e.orbit("app", "attach", uuid, "nosuchapp"); r.code == 0 || !strings.Contains(r.stderr, `has no app "nosuchapp"`) {
		t.Errorf("attach to no app: %+v", r)
	}
	e.mustOrbit("app", "rm", uuid, name)
	e.mustOrbit("stop", uuid)
	wait()
}
