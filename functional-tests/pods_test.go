//go:build functional

package functional

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// runOut runs a one-shot pod and returns its stdout, failing unless it
// exits 0.
func (e *env) runOut(args ...string) string {
	e.t.Helper()
	return e.mustOrbit(append([]string{"run"}, args...)...)
}

func lines(s string) map[string]string {
	out := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		k, v, _ := strings.Cut(l, "=")
		out[k] = v
	}
	return out
}

func TestMultiAppPodSharesNamespacesButNotMounts(t *testing.T) {
	e := newEnv(t)
	e.fetchDemo()
	dump := `for n in pid net ipc uts mnt; do echo "$n=$(readlink /proc/self/ns/$n)"; done > /shared/$0`
	out := e.runOut("--volume=shared,kind=empty",
		"demo", "--name=one", "--mount=volume=shared,target=/shared", "--exec=/bin/sh", "--", "-c", dump, "one",
		"---",
		"demo", "--name=two", "--mount=volume=shared,target=/shared", "--exec=/bin/sh", "--", "-c", "sleep 0.3; "+dump+"; cat /shared/one; echo ---; cat /shared/two", "two")
	if pods := e.listJSON(); len(pods) != 1 || len(pods[0].Apps) != 2 {
		t.Fatalf("list: %+v", pods)
	}
	one, two, ok := strings.Cut(out, "---\n")
	if !ok {
		t.Fatalf("output %q", out)
	}
	a, b := lines(one), lines(two)
	for _, n := range []string{"pid", "net", "ipc", "uts"} {
		if a[n] == "" || a[n] != b[n] {
			t.Errorf("%s namespace: app one %q, app two %q: want shared", n, a[n], b[n])
		}
	}
	if a["mnt"] == b["mnt"] {
		t.Errorf("mount namespace %q shared by both apps: want one each", a["mnt"])
	}
}

func TestVolumesHostReadOnlyAndEmptyShared(t *testing.T) {
	e := newEnv(t)
	e.fetchDemo()
	host := filepath.Join(e.root, "hostdir")
	os.Mkdir(host, 0o755)
	os.WriteFile(filepath.Join(host, "greeting"), []byte("from the host\n"), 0o644)
	rw := filepath.Join(e.root, "rwdir")
	os.Mkdir(rw, 0o755)
	out := e.runOut("--volume=ro,kind=host,source="+host+",readOnly=true",
		"--volume=rw,kind=host,source="+rw,
		"--volume=scratch,kind=empty,mode=0700,uid=1000,gid=1000",
		"demo", "--mount=volume=ro,target=/ro", "--mount=volume=rw,target=/rw", "--mount=volume=scratch,target=/scratch",
		"--exec=/bin/sh", "--", "-c",
		`cat /ro/greeting; if touch /ro/x 2>/dev/null; then echo ro-writable; fi; echo hi > /rw/out; stat -c '%a %u %g' /scratch`)
	if !strings.Contains(out, "from the host") || strings.Contains(out, "ro-writable") || !strings.Contains(out, "700 1000 1000") {
		t.Fatalf("output %q", out)
	}
	if b, _ := os.ReadFile(filepath.Join(rw, "out")); string(b) != "hi\n" {
		t.Fatalf("write through the host volume: %q", b)
	}
}

func TestEnvironmentFlags(t *testing.T) {
	e := newEnv(t)
	e.fetchDemo()
	f := filepath.Join(e.root, "env")
	os.WriteFile(f, []byte("# comment\nFROM_FILE=file\nBOTH=file\n"), 0o644)
	c := e.cmd("run", "--inherit-env", "--set-env-file="+f, "--set-env=BOTH=flag", "demo", "--exec=/bin/sh", "--", "-c", "echo $FROM_FILE $BOTH $ORBIT_TEST_INHERITED $AC_APP_NAME")
	c.Env = append(c.Env, "ORBIT_TEST_INHERITED=inherited")
	out, err := c.Output()
	if err != nil || string(out) != "file flag inherited demo\n" {
		t.Fatalf("output %q, %v", out, err)
	}
}

func TestHostnameDNSAndHostsEntries(t *testing.T) {
	e := newEnv(t)
	e.fetchDemo()
	out := e.runOut("--hostname=web", "--dns=192.0.2.53", "--dns-search=example.org", "--dns-opt=ndots:2",
		"--hosts-entry=192.0.2.7=db,db.local", "demo", "--exec=/bin/sh", "--", "-c", "hostname; cat /etc/hostname /etc/resolv.conf /etc/hosts")
	for _, want := range []string{"web\nweb\n", "nameserver 192.0.2.53", "search example.org", "options ndots:2", "192.0.2.7\tdb db.local", "127.0.1.1\tweb"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
}

func TestMemoryLimitOOMKillsAndStatusSaysSo(t *testing.T) {
	e := newEnv(t)
	e.fetchDemo()
	uf := filepath.Join(e.root, "uuid")
	r := e.orbit("run", "--uuid-file-save="+uf, "demo", "--memory=16M", "--exec=/bin/sh", "--", "-c", `x=a; while true; do x="$x$x"; done`)
	if r.code != 137 {
		t.Fatalf("exit %d, want 137 (SIGKILL by the OOM killer); stderr %q", r.code, r.stderr)
	}
	uuid, _ := os.ReadFile(uf)
	var st struct {
		Apps []struct {
			ExitCode  int
			OOMKilled bool
		}
	}
	if err := json.Unmarshal([]byte(e.mustOrbit("status", "--format=json", strings.TrimSpace(string(uuid)))), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Apps) != 1 || !st.Apps[0].OOMKilled || st.Apps[0].ExitCode != 137 {
		t.Fatalf("status: %+v", st)
	}
}

func TestCPULimitIsSet(t *testing.T) {
	e := newEnv(t)
	e.fetchDemo()
	out := e.runOut("demo", "--cpu=250m", "--exec=/bin/sh", "--", "-c",
		"cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cut -d' ' -f1 /sys/fs/cgroup/cpu.max")
	if strings.TrimSpace(out) != "25000" {
		t.Fatalf("CFS quota %q, want 25000 (a quarter of a 100ms period)", out)
	}
}

func capEff(t *testing.T, out string) uint64 {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(l, "CapEff:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no CapEff in %q", out)
	return 0
}

func TestCapabilitiesDefaultRetainRemove(t *testing.T) {
	e := newEnv(t)
	e.fetchDemo()
	const (
		capChown  = 1 << 0
		capNetRaw = 1 << 13
		capNetAdm = 1 << 12
		capSysAdm = 1 << 21
	)
	def := capEff(t, e.runOut("demo", "--exec=/bin/cat", "--", "/proc/self/status"))
	if def&capChown == 0 || def&(capNetRaw|capSysAdm|capNetAdm) != 0 {
		t.Errorf("default capabilities %#x: want CHOWN, not NET_RAW, NET_ADMIN or SYS_ADMIN", def)
	}
	if got := capEff(t, e.runOut("demo", "--caps-retain=net_admin", "--exec=/bin/cat", "--", "/proc/self/status")); got != capNetAdm {
		t.Errorf("--caps-retain=net_admin: %#x, want %#x", got, capNetAdm)
	}
	if got := capEff(t, e.runOut("demo", "--caps-remove=CAP_CHOWN", "--exec=/bin/cat", "--", "/proc/self/status")); got != def&^capChown {
		t.Errorf("--caps-remove=CAP_CHOWN: %#x, want %#x", got, def&^capChown)
	}
}

func TestReadonlyRootfsUserAndWorkingDir(t *testing.T) {
	e := newEnv(t)
	e.fetchDemo()
	if r := e.orbit("run", "demo", "--readonly-rootfs", "--exec=/bin/touch", "--", "/newfile"); r.code == 0 {
		t.Fatal("wrote to a read-only root filesystem")
	}
	out := e.runOut("demo", "--user=user", "--working-dir=/tmp", "--exec=/bin/sh", "--", "-c", "id -u; id -g; pwd")
	if out != "1000\n1000\n/tmp\n" {
		t.Fatalf("output %q", out)
	}
	if out := e.runOut("demo", "--user=65534", "--group=1000", "--exec=/bin/sh", "--", "-c", "id -u; id -g"); out != "65534\n1000\n" {
		t.Fatalf("numeric user and group: %q", out)
	}
}

func TestPrepareThenRunPrepared(t *testing.T) {
	e := newEnv(t)
	e.fetchDemo()
	uuid := strings.TrimSpace(e.mustOrbit("prepare", "demo", "--exec=/bin/echo", "--", "prepared"))
	if p := e.listJSON(); len(p) != 1 || p[0].State != "prepared" || p[0].UUID != uuid {
		t.Fatalf("list after prepare: %+v", p)
	}
	if out := e.mustOrbit("run-prepared", uuid[:8]); out != "prepared\n" {
		t.Fatalf("run-prepared printed %q", out)
	}
	if p := e.listJSON(); p[0].State != "exited" {
		t.Fatalf("after run-prepared: %+v", p)
	}
	var m struct {
		UUID string
		Apps []struct{ Name string }
	}
	if err := json.Unmarshal([]byte(e.mustOrbit("cat-manifest", uuid)), &m); err != nil || m.UUID != uuid || m.Apps[0].Name != "demo" {
		t.Fatalf("cat-manifest: %+v %v", m, err)
	}
}

func (e *env) startPod(args ...string) (string, func() string) {
	e.t.Helper()
	uf := filepath.Join(e.root, fmt.Sprintf("uuid-%d", time.Now().UnixNano()))
	c, out := e.start(append([]string{"run", "--uuid-file-save=" + uf}, args...)...)
	var uuid string
	waitFor(e.t, "the pod to be ready", 15*time.Second, func() bool {
		b, err := os.ReadFile(uf)
		if err != nil {
			return false
		}
		uuid = strings.TrimSpace(string(b))
		return e.orbit("status", "--wait-ready=1ms", uuid).code == 0
	})
	return uuid, func() string { _ = c.Wait(); return output(out) }
}

func TestEnterStopStatusAndRm(t *testing.T) {
	e := newEnv(t)
	e.fetchDemo()
	uuid, wait := e.startPod("demo", "--exec=/bin/sh", "--", "-c", "echo started > /tmp/mark; trap 'echo got TERM; exit 3' TERM; while true; do sleep 0.1; done")
	waitFor(t, "the app to start", 10*time.Second, func() bool {
		return e.orbit("enter", uuid, "/bin/cat", "/tmp/mark").stdout == "started\n"
	})
	if r := e.orbit("enter", uuid, "/bin/sh", "-c", "exit 5"); r.code != 5 {
		t.Fatalf("enter exit %d, want 5", r.code)
	}
	if r := e.orbit("rm", uuid); r.code == 0 || !strings.Contains(r.stderr, "still running") {
		t.Fatalf("rm of a running pod: %+v", r)
	}
	e.mustOrbit("stop", uuid)
	out := wait()
	if !strings.Contains(out, "got TERM") {
		t.Fatalf("the app did not see SIGTERM: %q", out)
	}
	st := lines(e.mustOrbit("status", "--wait=10s", uuid))
	if st["state"] != "exited" || st["app-demo"] != "3" {
		t.Fatalf("status: %v", st)
	}
	e.mustOrbit("rm", uuid)
	if p := e.listJSON(); len(p) != 0 {
		t.Fatalf("after rm: %+v", p)
	}
}

func TestStopForceKillsAnAppThatIgnoresTERM(t *testing.T) {
	e := newEnv(t)
	e.fetchDemo()
	uuid, wait := e.startPod("--stop-timeout=1h", "demo", "--exec=/bin/sh", "--", "-c", "trap '' TERM; while true; do sleep 0.1; done")
	e.mustOrbit("stop", "--force", uuid)
	wait()
	if st := lines(e.mustOrbit("status", "--wait=10s", uuid)); st["state"] != "exited" || st["app-demo"] != "137" {
		t.Fatalf("status: %v", st)
	}
}

// An app that forks a daemon and leaves it: the pod's init reaps it when
// it exits, so no zombie stays.
func TestOrphanedDaemonIsReaped(t *testing.T) {
	e := newEnv(t)
	e.fetchDemo()
	out := e.runOut("demo", "--exec=/bin/sh", "--", "-c",
		`sh -c 'sleep 0.2 & exit 0'; sleep 1; for s in /proc/[0-9]*/stat; do cut -d' ' -f3 $s; done | grep -c Z || true`)
	if strings.TrimSpace(out) != "0" {
		t.Fatalf("%s zombies in the pod after the daemon exited", out)
	}
}

func TestTwentyConcurrentPodsThenGC(t *testing.T) {
	e := newEnv(t)
	e.fetchDemo()
	var wg sync.WaitGroup
	results := make([]result, 20)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = e.orbit("run", "demo", "--exec=/bin/sh", "--", "-c", fmt.Sprintf("echo pod %d; exit %d", i, i%3))
		}()
	}
	wg.Wait()
	for i, r := range results {
		if r.code != i%3 || r.stdout != fmt.Sprintf("pod %d\n", i) {
			t.Errorf("pod %d: exit %d, stdout %q, stderr %q", i, r.code, r.stdout, r.stderr)
		}
	}
	pods := e.listJSON()
	if len(pods) != 20 {
		t.Fatalf("list shows %d pods, want 20", len(pods))
	}
	e.mustOrbit("gc", "--grace-period=0")
	if p := e.listJSON(); len(p) != 0 {
		t.Fatalf("%d pods after gc", len(p))
	}
	for _, p := range pods {
		if cg := findCgroups("orbit-" + p.UUID); len(cg) > 0 {
			t.Errorf("cgroups left: %v", cg)
		}
	}
}

func TestBadPodInputIsRefusedBeforeAnythingIsMade(t *testing.T) {
	e := newEnv(t)
	e.fetchDemo()
	cases := []struct {
		args []string
		msg  string
	}{
		{[]string{"run", "--volume=v", "demo"}, "kind= is required"},
		{[]string{"run", "--volume=v,kind=host,source=relative", "demo"}, "absolute path"},
		{[]string{"run", "--volume=v,kind=host,source=/nonexistent/x", "demo"}, "no such file"},
		{[]string{"run", "--volume=v,kind=bogus", "demo"}, `unknown kind "bogus"`},
		{[]string{"run", "demo", "--mount=volume=nosuch,target=/x"}, `volume "nosuch", which the pod does not define`},
		{[]string{"run", "demo", "--mount=target=/x"}, "want volume=NAME"},
		{[]string{"run", "demo", "--exec=/bin/nonexistent"}, `executable "/bin/nonexistent" is not in the image`},
		{[]string{"run", "demo", "--memory=lots"}, "--memory"},
		{[]string{"run", "demo", "--cpu=-1"}, "--cpu"},
		{[]string{"run", "demo", "--caps-retain=CAP_BOGUS"}, "unknown capability"},
		{[]string{"run", "--hosts-entry=notanip=x", "demo"}, "--hosts-entry"},
		{[]string{"run", "--dns=nameserver", "demo"}, "not an IP address"},
		{[]string{"run", "demo", "--user=ghost"}, "ghost"},
		{[]string{"run", "demo", "--working-dir=relative"}, "not an absolute path"},
		{[]string{"run", "demo", "--name=x", "---", "demo", "--name=x"}, `app name "x" used twice`},
	}
	for _, c := range cases {
		r := e.orbit(c.args...)
		if r.code == 0 || !strings.Contains(r.stderr, c.msg) {
			t.Errorf("orbit %v: exit %d, stderr %q; want a failure saying %q", c.args, r.code, r.stderr, c.msg)
		}
	}
	if u := e.podUUIDs(); len(u) != 0 {
		t.Fatalf("bad input left pods: %v", u)
	}
}

func TestSeccompDefaultFlagsAndInsecureOption(t *testing.T) {
	e := newEnv(t)
	e.fetchDemo()
	out := e.runOut("demo", "--exec=/bin/sh", "--", "-c",
		`grep '^Seccomp:' /proc/self/status; unshare -U true 2>/dev/null && echo userns-allowed; mount -t tmpfs x /tmp 2>/dev/null && echo mount-allowed; true`)
	if !strings.Contains(out, "Seccomp:\t2") || strings.Contains(out, "allowed") {
		t.Fatalf("default filter: %q", out)
	}
	out = e.runOut("demo", "--seccomp=mode=remove,errno=ENOSYS,mkdir,mkdirat", "--exec=/bin/sh", "--", "-c", "mkdir /x 2>&1; true")
	if !strings.Contains(out, "not implemented") {
		t.Fatalf("mode=remove,errno=ENOSYS,mkdir: %q", out)
	}
	out = e.mustOrbit("--insecure-options=seccomp", "run", "demo", "--exec=/bin/sh", "--", "-c", "grep '^Seccomp:' /proc/self/status")
	if !strings.Contains(out, "Seccomp:\t0") {
		t.Fatalf("--insecure-options=seccomp: %q", out)
	}
	// An allowlist too short for the app fails the app; it does not hang.
	if r := e.orbit("run", "demo", "--seccomp=mode=retain,exit_group", "--exec=/bin/true"); r.code == 0 {
		t.Fatal("an app ran under an allowlist of exit_group alone")
	}
	if r := e.orbit("run", "demo", "--seccomp=mode=bogus"); r.code != 2 || !strings.Contains(r.stderr, "mode=remove or mode=retain") {
		t.Fatalf("bad --seccomp: %+v", r)
	}
}

// SIGTERM while stage1 is still building the pod tears it down cleanly.
func TestStopWhileStartingTearsDown(t *testing.T) {
	e := newEnv(t)
	e.fetchDemo()
	for i := 0; i < 5; i++ {
		c, _ := e.start("run", "demo", "--exec=/bin/sleep", "--", "37")
		time.Sleep(time.Duration(i*15) * time.Millisecond)
		_ = c.Process.Signal(syscall.SIGTERM)
		_ = c.Wait()
	}
	waitFor(t, "the apps to be gone", 10*time.Second, func() bool { return !pgrepSleep("37") })
	for _, p := range e.listJSON() {
		if p.State == "running" {
			t.Fatalf("pod %s still running after SIGTERM", p.UUID)
		}
	}
}
