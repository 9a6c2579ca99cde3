//go:build functional

package functional

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestFlyAppRunsInTheHostNamespacesInItsImageRoot(t *testing.T) {
	e := newEnv(t)
	e.fetchDemo()
	host := filepath.Join(e.root, "hostdir")
	os.Mkdir(host, 0o755)
	os.WriteFile(filepath.Join(host, "greeting"), []byte("from the host\n"), 0o644)
	r := e.orbit("run", "--stage1-name=fly", "--volume=h,kind=host,source="+host,
		"demo", "--mount=volume=h,target=/h", "--exec=/bin/sh", "--", "-c",
		`for n in pid net ipc uts mnt; do echo "$n=$(readlink /proc/self/ns/$n)"; done
		echo "init=$(tr '\0' ' ' < /proc/1/cmdline)"
		echo "busybox=$(test -x /bin/busybox && echo yes)"
		echo "hostroot=$(test -e `+e.root+` && echo yes)"
		echo "volume=$(cat /h/greeting)"
		exit 7`)
	if r.code != 7 {
		t.Fatalf("exit %d, want the app's 7; stderr %q", r.code, r.stderr)
	}
	got := lines(r.stdout)
	for _, n := range []string{"pid", "net", "ipc", "uts"} {
		own, _ := os.Readlink("/proc/self/ns/" + n)
		if got[n] != own {
			t.Errorf("%s namespace %q, orbit's is %q: want the host's", n, got[n], own)
		}
	}
	if own, _ := os.Readlink("/proc/self/ns/mnt"); got["mnt"] == own {
		t.Errorf("mount namespace is the host's: want one of its own")
	}
	hostInit, _ := os.ReadFile("/proc/1/cmdline")
	if want := strings.ReplaceAll(string(hostInit), "\x00", " "); got["init"] != want {
		t.Errorf("the app's PID 1 is %q, the host's %q", got["init"], want)
	}
	if got["busybox"] != "yes" || got["hostroot"] != "" {
		t.Errorf("root: %v; want the image's", got)
	}
	if got["volume"] != "from the host" {
		t.Errorf("host volume: %q", got["volume"])
	}
}

func TestFlyRefusesAPodOfSeveralApps(t *testing.T) {
	e := newEnv(t)
	e.fetchDemo()
	r := e.orbit("run", "--stage1-name=fly", "demo", "--name=a", "---", "demo", "--name=b")
	if r.code == 0 || !strings.Contains(r.stderr, "a fly pod runs one app") {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	if u := e.podUUIDs(); len(u) != 0 {
		t.Fatalf("refused pod left %v", u)
	}
}

func TestFlySIGTERMToOrbitRunStopsTheApp(t *testing.T) {
	e := newEnv(t)
	e.fetchDemo()
	uuid, _ := e.startPod("--stage1-name=fly", "demo", "--exec=/bin/sh", "--", "-c", "trap 'echo got TERM; exit 3' TERM; while true; do sleep 0.1; done")
	c := e.started[len(e.started)-1]
	if err := c.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := c.Wait()
	if c.ProcessState.ExitCode() != 3 {
		t.Fatalf("orbit run: %v, want exit 3", err)
	}
	if st := lines(e.mustOrbit("status", "--wait=10s", uuid)); st["state"] != "exited" || st["app-demo"] != "3" {
		t.Fatalf("status: %v", st)
	}
}

func TestFlyEnterStopStatusAndGC(t *testing.T) {
	e := newEnv(t)
	e.fetchDemo()
	uuid, wait := e.startPod("--stage1-name=fly", "demo", "--exec=/bin/sh", "--", "-c", "echo started > /tmp/mark; trap 'echo got TERM; exit 3' TERM; while true; do sleep 0.1; done")
	waitFor(t, "the app to start", 10*time.Second, func() bool {
		return e.orbit("enter", uuid, "/bin/cat", "/tmp/mark").stdout == "started\n"
	})
	// enter joins the app's root, not the host's.
	if r := e.orbit("enter", uuid, "/bin/sh", "-c", "test -e "+e.root+" || exit 5"); r.code != 5 {
		t.Fatalf("enter exit %d, want 5", r.code)
	}
	if st := lines(e.mustOrbit("status", uuid)); st["state"] != "running" {
		t.Fatalf("status: %v", st)
	}
	e.mustOrbit("stop", uuid)
	if out := wait(); !strings.Contains(out, "got TERM") {
		t.Fatalf("the app did not see SIGTERM: %q", out)
	}
	if st := lines(e.mustOrbit("status", "--wait=10s", uuid)); st["state"] != "exited" || st["app-demo"] != "3" {
		t.Fatalf("status: %v", st)
	}
	e.mustOrbit("gc", "--grace-period=0")
	if p := e.listJSON(); len(p) != 0 {
		t.Fatalf("after gc: %+v", p)
	}
	if cg := findCgroups("orbit-" + uuid); len(cg) > 0 {
		t.Fatalf("cgroups left: %v", cg)
	}
}

// A fly app has no pod init to take it down with a dead supervisor: the
// pod shows as dead, and gc kills what is left in its cgroup.
func TestFlyGCKillsTheAppOfADeadSupervisor(t *testing.T) {
	e := newEnv(t)
	e.fetchDemo()
	uuid, _ := e.startPod("--stage1-name=fly", "demo", "--exec=/bin/sleep", "--", "4711")
	c := e.started[len(e.started)-1]
	_ = c.Process.Kill()
	_ = c.Wait()
	if p := e.listJSON(); len(p) != 1 || p[0].State != "dead" {
		t.Fatalf("list after the supervisor died: %+v", p)
	}
	e.mustOrbit("gc", "--grace-period=0")
	if pgrepSleep("4711") {
		t.Fatal("the app survived gc")
	}
	if p := e.listJSON(); len(p) != 0 {
		t.Fatalf("after gc: %+v", p)
	}
	if cg := findCgroups("orbit-" + uuid); len(cg) > 0 {
		t.Fatalf("cgroups left: %v", cg)
	}
}

// A daemon a fly app leaves behind is in the app's cgroup, and goes with
// the pod.
func TestFlyDaemonLeftByTheAppGoesWithThePod(t *testing.T) {
	e := newEnv(t)
	e.fetchDemo()
	e.runOut("--stage1-name=fly", "demo", "--exec=/bin/sh", "--", "-c", "/bin/sleep 4712 & exit 0")
	if pgrepSleep("4712") {
		t.Fatal("the app's daemon outlived the pod")
	}
}
