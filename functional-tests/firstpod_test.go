//go:build functional

package functional

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestFetchStoresDemoImageAndImageListShowsIt(t *testing.T) {
	e := newEnv(t)
	id := strings.TrimSpace(e.mustOrbit("fetch", "oci-archive:"+filepath.Join(build, "demo.oci.tar")))
	if !strings.HasPrefix(id, "sha256:") {
		t.Fatalf("fetch printed %q, want an image ID", id)
	}
	out := e.mustOrbit("image", "list")
	if !strings.Contains(out, "demo:latest") || !strings.Contains(out, id[:19]) {
		t.Fatalf("image list does not show demo:latest %s:\n%s", id, out)
	}
	var imgs []struct {
		ID     string
		Names  []string
		Layers []struct{ ChainID string }
	}
	if err := json.Unmarshal([]byte(e.mustOrbit("image", "list", "--format=json")), &imgs); err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 1 || imgs[0].ID != id {
		t.Fatalf("image list --format=json: %+v", imgs)
	}
	// The layer is extracted once, under its chain ID.
	layer := filepath.Join(e.data, "images", "layers", strings.TrimPrefix(imgs[0].Layers[0].ChainID, "sha256:"))
	if _, err := os.Stat(filepath.Join(layer, "bin", "busybox")); err != nil {
		t.Fatalf("extracted layer: %v", err)
	}
	// Fetching again stores nothing new and gives the same ID.
	if again := strings.TrimSpace(e.mustOrbit("fetch", "oci-archive:"+filepath.Join(build, "demo.oci.tar"))); again != id {
		t.Fatalf("second fetch gave %s, first %s", again, id)
	}
}

func TestRunPrintsAppOutputAndExitsZero(t *testing.T) {
	e := newEnv(t)
	e.fetchDemo()
	r := e.orbit("run", "--insecure-options=image", "demo", "--exec=/bin/echo", "--", "hello")
	if r.code != 0 || r.stdout != "hello\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q; want 0, \"hello\\n\"", r.code, r.stdout, r.stderr)
	}
}

func TestRunExitStatusPropagates(t *testing.T) {
	e := newEnv(t)
	e.fetchDemo()
	if r := e.orbit("run", "demo", "--exec=/bin/sh", "--", "-c", "exit 7"); r.code != 7 {
		t.Fatalf("exit %d, want 7 (stderr %q)", r.code, r.stderr)
	}
	// Killed by a signal: 128+signal, as a shell reports it.
	if r := e.orbit("run", "demo", "--exec=/bin/sh", "--", "-c", "kill -9 $$"); r.code != 137 {
		t.Fatalf("exit %d, want 137 (stderr %q)", r.code, r.stderr)
	}
}

func TestRunImageDefaultCommand(t *testing.T) {
	e := newEnv(t)
	e.fetchDemo()
	out := e.mustOrbit("run", "demo")
	if !strings.HasPrefix(out, "Hello from an Orbit pod") {
		t.Fatalf("demo printed %q", out)
	}
}

// The app has its own mount, pid, uts and ipc namespaces, its own cgroup,
// and an overlay root.
func TestAppIsIsolated(t *testing.T) {
	e := newEnv(t)
	e.fetchDemo()
	script := `for n in mnt pid uts ipc net; do echo "ns $n $(readlink /proc/self/ns/$n)"; done
echo "pid $$"
echo "hostname $(hostname)"
grep -E '^[0-9]+:(memory|pids)?:' /proc/self/cgroup | sed 's/^[0-9]*:\([a-z]*\):/cgroup \1 /'
awk '$5 == "/" {for (i = 7; i <= NF; i++) if ($i == "-") print "root " $(i+1)}' /proc/self/mountinfo`
	out := e.mustOrbit("run", "--hostname=podhost", "demo", "--exec=/bin/sh", "--", "-c", script)
	got := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		k, v, _ := strings.Cut(l, " ")
		if k == "ns" || k == "cgroup" {
			n, rest, _ := strings.Cut(v, " ")
			k, v = k+" "+n, rest
		}
		got[k] = v
	}
	for _, n := range []string{"mnt", "pid", "uts", "ipc", "net"} {
		host, err := os.Readlink("/proc/self/ns/" + n)
		if err != nil {
			t.Fatal(err)
		}
		if got["ns "+n] == "" || got["ns "+n] == host {
			t.Errorf("%s namespace: app has %q, host %q: want a namespace of its own", n, got["ns "+n], host)
		}
	}
	if pid, _ := strconv.Atoi(got["pid"]); pid <= 1 || pid > 100 {
		t.Errorf("app PID %q: want a small PID in the pod's PID namespace", got["pid"])
	}
	if got["hostname"] != "podhost" {
		t.Errorf("hostname %q, want podhost", got["hostname"])
	}
	if got["root"] != "overlay" {
		t.Errorf("root filesystem %q, want overlay\n%s", got["root"], out)
	}
	for k, v := range got {
		if strings.HasPrefix(k, "cgroup ") && !strings.Contains(v, "/orbit-") {
			t.Errorf("%s: %q is not under the pod's cgroup", k, v)
		}
	}
	if len(got) < 9 {
		t.Errorf("no cgroup line in the app's /proc/self/cgroup:\n%s", out)
	}
}

// stage0 execs stage1: the process that ran `orbit run` is the supervisor.
func TestRunBecomesTheSupervisor(t *testing.T) {
	e := newEnv(t)
	e.fetchDemo()
	c, out := e.start("run", "demo", "--exec=/bin/sleep", "--", "31")
	var uuid string
	waitFor(t, "the app to run", 10*time.Second, func() bool {
		for _, p := range e.listJSON() {
			if p.State == "running" {
				uuid = p.UUID
			}
		}
		return uuid != "" && pgrepSleep("31")
	})
	exe, err := os.Readlink("/proc/" + strconv.Itoa(c.Process.Pid) + "/exe")
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(exe) != "orbit-stage1" {
		t.Fatalf("PID %d that ran orbit run is %s, want orbit-stage1", c.Process.Pid, exe)
	}
	// SIGTERM to that PID stops the pod; the app's status is sleep's
	// death by SIGTERM.
	if err := c.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err = c.Wait()
	if c.ProcessState.ExitCode() != 128+int(syscall.SIGTERM) {
		t.Fatalf("orbit run exited %v after SIGTERM, want status 143; output %s", err, output(out))
	}
	for _, p := range e.listJSON() {
		if p.UUID == uuid && p.State != "exited" {
			t.Fatalf("pod %s is %s after its supervisor exited, want exited", uuid, p.State)
		}
	}
}

type podJSON struct {
	UUID    string
	State   string
	Created time.Time
	Apps    []struct {
		Name     string
		Image    string
		ExitCode *int
	}
}

func (e *env) listJSON() []podJSON {
	e.t.Helper()
	var pods []podJSON
	if err := json.Unmarshal([]byte(e.mustOrbit("list", "--format=json")), &pods); err != nil {
		e.t.Fatal(err)
	}
	return pods
}

func TestListShowsPodAndGCRemovesIt(t *testing.T) {
	e := newEnv(t)
	e.fetchDemo()
	e.mustOrbit("run", "demo", "--exec=/bin/true")
	pods := e.listJSON()
	if len(pods) != 1 {
		t.Fatalf("list shows %d pods, want 1", len(pods))
	}
	p := pods[0]
	if p.State != "exited" || len(p.Apps) != 1 || p.Apps[0].Name != "demo" || p.Apps[0].Image != "demo:latest" ||
		p.Apps[0].ExitCode == nil || *p.Apps[0].ExitCode != 0 || time.Since(p.Created) > time.Minute {
		t.Fatalf("list: %+v", p)
	}
	table := e.mustOrbit("list")
	for _, want := range []string{"UUID", "APP", "IMAGE NAME", "STATE", "CREATED", p.UUID[:8], "demo:latest", "exited"} {
		if !strings.Contains(table, want) {
			t.Errorf("list table lacks %q:\n%s", want, table)
		}
	}
	// Within the grace period gc keeps it.
	e.mustOrbit("gc")
	if len(e.listJSON()) != 1 {
		t.Fatal("gc removed a pod within its grace period")
	}
	out := e.mustOrbit("gc", "--grace-period=0")
	if !strings.Contains(out, p.UUID) {
		t.Errorf("gc output %q does not name the pod", out)
	}
	if n := len(e.listJSON()); n != 0 {
		t.Fatalf("list shows %d pods after gc", n)
	}
	if ms := mountsUnder(e.root); len(ms) > 0 {
		t.Fatalf("mounts left after gc: %v", ms)
	}
	if cg := findCgroups("orbit-" + p.UUID); len(cg) > 0 {
		t.Fatalf("cgroups left after gc: %v", cg)
	}
}

// A pod whose supervisor is killed is told apart from a running one, and gc
// kills its apps and releases its cgroups.
func TestSupervisorKilledPodIsDeadAndCollected(t *testing.T) {
	e := newEnv(t)
	e.fetchDemo()
	c, _ := e.start("run", "demo", "--exec=/bin/sleep", "--", "313")
	var uuid string
	waitFor(t, "the app to run", 10*time.Second, func() bool {
		for _, p := range e.listJSON() {
			if p.State == "running" {
				uuid = p.UUID
			}
		}
		return uuid != "" && pgrepSleep("313")
	})
	if err := c.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = c.Wait()
	if p := e.listJSON(); len(p) != 1 || p[0].State != "dead" {
		t.Fatalf("after kill -9 of the supervisor, list says %+v, want dead", p)
	}
	if len(findCgroups("orbit-"+uuid)) == 0 {
		t.Fatal("the pod's cgroup vanished with the supervisor: the test proves nothing")
	}
	// The pod dies with its supervisor (its init has SIGKILL as parent-death
	// signal, and the kernel then kills the whole PID namespace).
	waitFor(t, "the app to die with its supervisor", 10*time.Second, func() bool { return !pgrepSleep("313") })
	e.mustOrbit("gc", "--grace-period=0")
	if n := len(e.listJSON()); n != 0 {
		t.Fatalf("%d pods left after gc", n)
	}
	if cg := findCgroups("orbit-" + uuid); len(cg) > 0 {
		t.Fatalf("cgroups left after gc: %v", cg)
	}
	if pgrepSleep("313") {
		t.Fatal("the app (sleep 313) survived gc")
	}
}

func pgrepSleep(arg string) bool {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, _ := os.ReadFile(p)
		if string(b) == "/bin/sleep\x00"+arg+"\x00" {
			return true
		}
	}
	return false
}

func TestRunBadInputLeavesNoPod(t *testing.T) {
	e := newEnv(t)
	e.fetchDemo()
	cases := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"run", "nosuchimage"}, 125, `image "nosuchimage" is not in the store`},
		{[]string{"run", "--no-such-flag", "demo"}, 2, "unknown flag: --no-such-flag"},
		{[]string{"run", "demo", "--bogus"}, 2, "unknown flag: --bogus"},
		{[]string{"run", "demo", "stray"}, 2, `unexpected argument "stray"`},
		{[]string{"run", "demo", "--user=nosuchuser"}, 125, "nosuchuser"},
		{[]string{"run", "--stage1-path=/nonexistent/stage1", "demo"}, 125, "not an executable file"},
		{[]string{"--insecure-options=bogus", "run", "demo"}, 2, `unknown option "bogus"`},
		{[]string{"run", "demo", "---"}, 2, "empty app"},
	}
	for _, c := range cases {
		r := e.orbit(c.args...)
		if r.code != c.code || !strings.Contains(r.stderr, c.msg) {
			t.Errorf("orbit %v: exit %d, stderr %q; want exit %d and %q", c.args, r.code, r.stderr, c.code, c.msg)
		}
		if strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 {
			t.Errorf("orbit %v: error is more than one line: %q", c.args, r.stderr)
		}
	}
	if u := e.podUUIDs(); len(u) != 0 {
		t.Fatalf("bad input left pod directories: %v", u)
	}
}
