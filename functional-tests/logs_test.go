//go:build functional

package functional

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// waitCmd waits for a started orbit command to finish by itself, failing the
// test if it does not within limit (a follow that never ends).
func waitExit(t *testing.T, what string, limit time.Duration, wait func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-time.After(limit):
		t.Fatalf("%s did not end within %v", what, limit)
	}
}

var criLine = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z (stdout|stderr) [FP] `)

func TestLogsFollowARunningPodUntilItExits(t *testing.T) {
	e := newEnv(t)
	e.fetchDemo()
	uuid, wait := e.startPod("demo", "--exec=/bin/sh", "--", "-c",
		"echo one; echo err-one >&2; while [ ! -e /tmp/go ]; do sleep 0.05; done; echo two; exit 4")
	follow, out := e.start("logs", "--follow", uuid)
	waitFor(t, "logs --follow to print the first lines", 10*time.Second, func() bool {
		o := output(out)
		return strings.Contains(o, "one\n") && strings.Contains(o, "err-one\n")
	})
	if strings.Contains(output(out), "two") {
		t.Fatal("printed a line the app has not written yet")
	}
	e.mustOrbit("enter", uuid, "/bin/touch", "/tmp/go")
	waitExit(t, "orbit logs --follow", 20*time.Second, follow.Wait)
	if o := output(out); !strings.HasSuffix(o, "two\n") {
		t.Errorf("follow printed %q, want it to end with the last line", o)
	}
	// The supervisor's own output (a unit's journal) has the lines too.
	if o := wait(); !strings.Contains(o, "one\n") || !strings.Contains(o, "err-one\n") || !strings.Contains(o, "two\n") {
		t.Errorf("orbit run printed %q", o)
	}

	// The exited pod's log: stdout lines on stdout, stderr's on stderr.
	r := e.orbit("logs", uuid)
	if r.code != 0 || r.stdout != "one\ntwo\n" || r.stderr != "err-one\n" {
		t.Fatalf("logs of the exited pod: %+v", r)
	}
	b, err := os.ReadFile(filepath.Join(e.data, "pods", "exited-garbage", uuid, "logs", "demo.log"))
	if err != nil {
		t.Fatal(err)
	}
	ls := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(ls) != 3 {
		t.Fatalf("log file:\n%s", b)
	}
	for _, l := range ls {
		if !criLine.MatchString(l) {
			t.Errorf("not a CRI log line: %q", l)
		}
	}
	if !strings.HasSuffix(ls[1], " stderr F err-one") && !strings.HasSuffix(ls[0], " stderr F err-one") {
		t.Errorf("log file:\n%s", b)
	}
	// Until gc: then the pod and its logs are gone.
	e.mustOrbit("gc", "--grace-period=0")
	if r := e.orbit("logs", uuid); r.code == 0 || !strings.Contains(r.stderr, "not found") {
		t.Errorf("logs after gc: %+v", r)
	}
}

func TestLogsRotateAndTwoAppsAndLongLines(t *testing.T) {
	e := newEnv(t)
	e.fetchDemo()
	uf := filepath.Join(e.root, "uuid")
	e.runOut("--uuid-file-save="+uf, "--log-max-size=1K", "--log-max-files=4",
		"demo", "--name=a", "--exec=/bin/sh", "--", "-c",
		"for i in $(seq 100 199); do echo a-$i; done; head -c 20000 /dev/zero | tr '\\0' x; echo; echo a-last",
		"---",
		"demo", "--name=b", "--exec=/bin/sh", "--", "-c", "echo b says hi >&2")
	ub, err := os.ReadFile(uf)
	if err != nil {
		t.Fatal(err)
	}
	uuid := strings.TrimSpace(string(ub))
	logs := filepath.Join(e.data, "pods", "exited-garbage", uuid, "logs")
	// Each part of the long line fills a file of its own: a-last, the long
	// line's two parts, and the end of the short lines are the 4 kept.
	for _, f := range []string{"a.log", "a.log.1", "a.log.2", "a.log.3", "b.log"} {
		if _, err := os.Stat(filepath.Join(logs, f)); err != nil {
			t.Errorf("%v", err)
		}
	}
	if _, err := os.Stat(filepath.Join(logs, "a.log.4")); !os.IsNotExist(err) {
		t.Errorf("a fifth file of app a kept: %v", err)
	}
	// The 40000-byte line was split into parts (P) in the file and comes
	// back whole.
	raw, _ := os.ReadFile(filepath.Join(logs, "a.log"))
	all := string(raw)
	for _, f := range []string{"a.log.1", "a.log.2", "a.log.3"} {
		b, _ := os.ReadFile(filepath.Join(logs, f))
		all = string(b) + all
	}
	if !strings.Contains(all, " stdout P xxx") {
		t.Errorf("no partial line in the logs")
	}
	r := e.orbit("logs", "--app=a", uuid)
	if r.code != 0 {
		t.Fatalf("logs --app=a: %+v", r)
	}
	got := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if got[len(got)-1] != "a-last" || got[len(got)-2] != strings.Repeat("x", 20000) {
		t.Fatalf("logs --app=a: the last lines are not the 20000-byte line and a-last: %d lines, last %.80q", len(got), got[len(got)-1])
	}
	// What rotation kept is the end of the output, in order.
	for i := 1; i < len(got)-2; i++ {
		if got[i-1] >= got[i] {
			t.Fatalf("lines out of order: %q then %q", got[i-1], got[i])
		}
	}
	if r := e.mustOrbit("logs", "--app=a", "--tail=1", uuid); r != "a-last\n" {
		t.Errorf("--tail=1 gave %q", r)
	}
	r = e.orbit("logs", uuid)
	if !strings.Contains(r.stderr, "b: b says hi\n") || !strings.Contains(r.stdout, "a: a-last\n") {
		t.Errorf("logs of both apps: %+v", r)
	}
	if r := e.orbit("logs", "--app=c", uuid); r.code == 0 || !strings.Contains(r.stderr, `no app "c"`) {
		t.Errorf("logs of a missing app: %+v", r)
	}
}
