//go:build functional

package functional

import (
	units "github.com/orbit-pods/orbit/systemd-units"

	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/orbit-pods/orbit/os/vm"
)

// buildSdappImage builds functional-tests/sdapp statically and packs it as
// the image sdapp:latest in an OCI archive under dir.
func buildSdappImage(dir string) (string, error) {
	root := filepath.Join(dir, "sdapp-root")
	if err := os.MkdirAll(filepath.Join(root, "tmp"), 0o1777); err != nil {
		return "", err
	}
	c := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(root, "sdapp"), "./sdapp")
	c.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := c.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build sdapp: %v\n%s", err, out)
	}
	archive := filepath.Join(dir, "sdapp.oci.tar")
	if out, err := exec.Command(filepath.Join(build, "bin", "orbit-mkimage"), "--layer", root, "--name", "sdapp:latest",
		"--entrypoint", `["/sdapp"]`, "-o", archive).CombinedOutput(); err != nil {
		return "", fmt.Errorf("orbit-mkimage: %v\n%s", err, out)
	}
	return archive, nil
}

// vmWriteFile writes content to path in the guest.
func vmWriteFile(t *testing.T, m *vm.Machine, path, content string) {
	t.Helper()
	mustVMRun(t, m, fmt.Sprintf("mkdir -p %s && echo %s | base64 -d > %s", filepath.Dir(path),
		base64.StdEncoding.EncodeToString([]byte(content)), path))
}

// vmWait runs cond in the guest until it succeeds. A readiness wait with
// a generous bound, not an assertion on time.
func vmWait(t *testing.T, m *vm.Machine, what, cond string) {
	t.Helper()
	r := vmRun(t, m, fmt.Sprintf("for i in $(seq 600); do (%s) >/dev/null 2>&1 && exit 0; sleep 0.2; done; exit 1", cond))
	if r.Code != 0 {
		t.Fatalf("waiting for %s: never happened (%s)\n%s", what, cond,
			vmRun(t, m, "systemctl list-units --no-pager --all 'orbit-*'; journalctl --no-pager -n 40 -u 'orbit-*'").Stdout)
	}
}

// unitProps reads properties of a unit.
func unitProps(t *testing.T, m *vm.Machine, unit string, props ...string) map[string]string {
	t.Helper()
	out := mustVMRun(t, m, "systemctl show "+unit+" -p "+strings.Join(props, ","))
	got := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			got[k] = v
		}
	}
	return got
}

func journal(t *testing.T, m *vm.Machine, unit string) string {
	t.Helper()
	return mustVMRun(t, m, "journalctl -u "+unit+" --no-pager -o cat")
}

// podDirs lists the pod directories in the guest, whatever their state.
func podDirs(t *testing.T, m *vm.Machine) []string {
	t.Helper()
	return strings.Fields(mustVMRun(t, m, "ls -d /var/lib/orbit/pods/*/* 2>/dev/null || true"))
}

const orbitBin = "/usr/local/bin/orbit"

// TestPodUnitsUnderSystemdInVM runs pods as the ExecStart of units under
// a real systemd, one boot for all of: graceful stop with the app's exit
// status as the unit's, the journal, the pod's cgroup inside the unit's,
// systemctl kill, memory limits, Restart=on-failure, Type=notify, socket
// activation, machined, and a unit whose image is missing.
func TestPodUnitsUnderSystemdInVM(t *testing.T) {
	m := bootVM(t)
	vmRun(t, m, "systemctl is-system-running --wait")
	mustVMRun(t, m, "orbit fetch oci-archive:/opt/orbit-test/demo.oci.tar && orbit fetch oci-archive:/opt/orbit-test/sdapp.oci.tar")

	t.Run("StopJournalCgroupKill", func(t *testing.T) { testUnitStopJournalCgroup(t, m) })
	t.Run("MemoryLimits", func(t *testing.T) { testUnitMemoryLimits(t, m) })
	t.Run("RestartOnFailure", func(t *testing.T) { testUnitRestart(t, m) })
	t.Run("Notify", func(t *testing.T) { testUnitNotify(t, m) })
	t.Run("SocketActivation", func(t *testing.T) { testUnitSocketActivation(t, m) })
	t.Run("NotifyFly", func(t *testing.T) { testUnitNotifyFly(t, m) })
	t.Run("MissingImage", func(t *testing.T) { testUnitMissingImage(t, m) })
	t.Run("ShippedUnits", func(t *testing.T) { testShippedUnits(t, m) })
}

// A pod unit: stop is graceful (the app's TERM trap runs) and its exit
// status is the unit's; its output is in the unit's journal, lines intact;
// its processes are in the unit's cgroup, listed by systemctl status and
// reached by systemctl kill.
func testUnitStopJournalCgroup(t *testing.T, m *vm.Machine) {
	long := strings.Repeat("0123456789", 300)
	script := `trap "echo got-TERM; exit 7" TERM; trap "echo got-WINCH" WINCH; ` +
		`i=0; while [ $i -lt 200 ]; do echo out-$i; echo err-$i >&2; i=$((i+1)); done; ` +
		`echo ` + long + `; echo started; while :; do sleep 0.2; done`
	vmWriteFile(t, m, "/etc/systemd/system/orbit-svc.service", `[Unit]
Description=a pod under test

[Service]
Delegate=yes
ExecStart=`+orbitBin+` run demo --exec=/bin/sh -- -c '`+script+`'
TimeoutStopSec=60
`)
	mustVMRun(t, m, "systemctl daemon-reload && systemctl start orbit-svc")
	vmWait(t, m, "the app to start", "journalctl -u orbit-svc -o cat | grep -qx started")

	unitCg := "/sys/fs/cgroup/system.slice/orbit-svc.service"
	tree := mustVMRun(t, m, "find "+unitCg+" -name cgroup.procs | sort | while read f; do echo \"$f: $(cat $f | tr '\\n' ' ')\"; done")
	t.Logf("cgroups of the unit:\n%s", tree)
	if own := strings.TrimSpace(mustVMRun(t, m, "cat "+unitCg+"/cgroup.procs")); own != "" {
		t.Errorf("the unit's cgroup holds processes itself: %q", own)
	}
	main := strings.TrimSpace(unitProps(t, m, "orbit-svc", "MainPID")["MainPID"])
	if got := mustVMRun(t, m, "cat /proc/"+main+"/cgroup"); !strings.Contains(got, "/orbit-svc.service/supervisor") {
		t.Errorf("main PID %s (the supervisor) is in %q, want the unit's supervisor leaf", main, got)
	}
	if !strings.Contains(tree, "/orbit-svc.service/orbit-") || !strings.Contains(tree, "/app-demo/cgroup.procs: ") {
		t.Errorf("the pod's cgroups are not inside the unit's")
	}
	status := vmRun(t, m, "systemctl status --no-pager -l orbit-svc").Stdout
	if !strings.Contains(status, "app-demo") || !strings.Contains(status, "got-TERM") {
		t.Errorf("systemctl status does not list the pod's app:\n%s", status)
	}
	mustVMRun(t, m, "systemctl kill -s WINCH orbit-svc")
	vmWait(t, m, "the app to get systemctl kill's signal", "journalctl -u orbit-svc -o cat | grep -qx got-WINCH")

	mustVMRun(t, m, "systemctl stop orbit-svc")
	p := unitProps(t, m, "orbit-svc", "Result", "ExecMainStatus", "ActiveState")
	if p["ExecMainStatus"] != "7" || p["Result"] != "exit-code" {
		t.Errorf("after stop: %v, want ExecMainStatus=7 (the app's TERM trap) and Result=exit-code", p)
	}
	j := journal(t, m, "orbit-svc")
	if !strings.Contains(j, "\ngot-TERM\n") {
		t.Errorf("the app did not get SIGTERM on stop:\n%s", tail(j, 20))
	}
	lines := map[string]bool{}
	for _, l := range strings.Split(j, "\n") {
		lines[l] = true
	}
	for i := 0; i < 200; i++ {
		if !lines["out-"+strconv.Itoa(i)] || !lines["err-"+strconv.Itoa(i)] {
			t.Errorf("journal lacks out-%d or err-%d as a line of its own", i, i)
			break
		}
	}
	if !lines[long] {
		t.Errorf("journal lacks the 3000-character line intact")
	}
	if r := vmRun(t, m, "test -e "+unitCg); r.Code == 0 {
		t.Errorf("the unit's cgroup %s is left after stop", unitCg)
	}
}

func tail(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// The unit's MemoryMax= holds for the pod inside it, and so does an app's
// --memory inside a unit without one.
func testUnitMemoryLimits(t *testing.T, m *vm.Machine) {
	for _, c := range []struct{ unit, prop, flag string }{
		{"orbit-mem-unit", "MemoryMax=64M\nMemorySwapMax=0", ""},
		{"orbit-mem-app", "", "--memory=64M "},
	} {
		mustVMRun(t, m, fmt.Sprintf("systemd-run --unit=%s -p Delegate=yes %s --wait %s run sdapp %s--exec=/sdapp -- mem 300 || true",
			c.unit, propFlags(c.prop), orbitBin, c.flag))
		p := unitProps(t, m, c.unit, "Result", "ExecMainStatus")
		j := journal(t, m, c.unit)
		if strings.Contains(j, "allocated 300 MB") || (p["ExecMainStatus"] != "137" && p["Result"] != "oom-kill") {
			t.Errorf("%s: 300 MB allocated under a 64M limit: %v\n%s", c.unit, p, tail(j, 10))
		}
	}
}

func propFlags(props string) string {
	var out []string
	for _, p := range strings.Fields(props) {
		out = append(out, "-p "+p)
	}
	return strings.Join(out, " ")
}

// Restart=on-failure: each failed run is a pod of its own, exited, its
// network released, and gc removes them.
func testUnitRestart(t *testing.T, m *vm.Machine) {
	before := podDirs(t, m)
	vmWriteFile(t, m, "/etc/systemd/system/orbit-restart.service", `[Unit]
StartLimitIntervalSec=300
StartLimitBurst=3

[Service]
Delegate=yes
ExecStart=`+orbitBin+` run --net=sdtest demo --exec=/bin/sh -- -c 'echo failing-run; exit 1'
Restart=on-failure
RestartSec=200ms
`)
	// A network of the test's own, without masquerading: the guest has no
	// iptables. Its leases are in /run/sdtest-ipam.
	vmWriteFile(t, m, "/etc/orbit/net.d/10-sdtest.conflist", `{"cniVersion": "1.0.0", "name": "sdtest", "plugins": [
  {"type": "bridge", "bridge": "sdtest0", "isGateway": true, "ipMasq": false,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.99.0.0/24"}]], "dataDir": "/run/sdtest-ipam"}}]}
`)
	mustVMRun(t, m, "systemctl daemon-reload && systemctl start orbit-restart || true")
	vmWait(t, m, "the restarts to end", "systemctl show -p NRestarts --value orbit-restart | grep -qx 3 && systemctl is-failed -q orbit-restart")
	if n := strings.Count(journal(t, m, "orbit-restart"), "failing-run"); n != 3 {
		t.Errorf("%d runs, want 3", n)
	}
	list := mustVMRun(t, m, "orbit list --no-legend 2>/dev/null || orbit list")
	t.Logf("orbit list:\n%s", list)
	if strings.Contains(list, "running") {
		t.Errorf("a restarted pod is still running")
	}
	if leases := vmRun(t, m, "ls /run/sdtest-ipam/sdtest/ | grep -E '^[0-9.]+$'").Stdout; leases != "" {
		t.Errorf("addresses still leased after the pods exited: %s", leases)
	}
	if links := mustVMRun(t, m, "ip -o link show type veth"); links != "" {
		t.Errorf("veths left: %s", links)
	}
	mustVMRun(t, m, "orbit gc --grace-period=0s")
	if after := podDirs(t, m); len(after) > len(before) {
		t.Errorf("gc left pods: before %v, after %v", before, after)
	}
}

// Type=notify: the unit is activating until the app says READY=1 through
// the relayed socket, and active after; STATUS= reaches systemd too. The
// pod is registered with machined while it runs.
func testUnitNotify(t *testing.T, m *vm.Machine) {
	vmWriteFile(t, m, "/etc/systemd/system/orbit-notify.service", `[Service]
Type=notify
Delegate=yes
ExecStart=`+orbitBin+` run --volume=go,kind=host,source=/run/sdapp-go sdapp --exec=/sdapp --mount=volume=go,target=/go -- notify /go/ready
`)
	mustVMRun(t, m, "mkdir -p /run/sdapp-go && systemctl daemon-reload && systemctl start --no-block orbit-notify")
	vmWait(t, m, "the app to wait", "journalctl -u orbit-notify -o cat | grep -q 'sdapp: waiting'")
	if st := strings.TrimSpace(vmRun(t, m, "systemctl is-active orbit-notify").Stdout); st != "activating" {
		t.Errorf("before READY=1 the unit is %q, want activating", st)
	}
	mustVMRun(t, m, "touch /run/sdapp-go/ready && systemctl start orbit-notify")
	p := unitProps(t, m, "orbit-notify", "ActiveState", "StatusText", "MainPID", "ActiveEnterTimestampMonotonic")
	if p["ActiveState"] != "active" || p["StatusText"] != "ready from sdapp" {
		t.Errorf("after READY=1: %v, want active with the app's status text", p)
	}
	j := journal(t, m, "orbit-notify")
	var sent int64
	for _, l := range strings.Split(j, "\n") {
		if v, ok := strings.CutPrefix(l, "sdapp: sending READY=1 at monotonic "); ok {
			sent, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	if active, _ := strconv.ParseInt(p["ActiveEnterTimestampMonotonic"], 10, 64); sent == 0 || active < sent {
		t.Errorf("the unit became active at %d, the app sent READY=1 at %d", active, sent)
	}

	machines := mustVMRun(t, m, "machinectl list --no-legend")
	t.Logf("machinectl list:\n%s", machines)
	name := ""
	for _, f := range strings.Fields(machines) {
		if strings.HasPrefix(f, "orbit-") {
			name = f
		}
	}
	if name == "" {
		t.Errorf("machinectl list does not show the pod")
	} else if st := mustVMRun(t, m, "machinectl status --no-pager -l "+name); !strings.Contains(st, "/sdapp notify") {
		t.Errorf("machinectl status %s does not show the app's process:\n%s", name, st)
	}
	mustVMRun(t, m, "systemctl stop orbit-notify")
	if machines := mustVMRun(t, m, "machinectl list --no-legend"); name != "" && strings.Contains(machines, name) {
		t.Errorf("the pod is still registered after it stopped:\n%s", machines)
	}
}

// Socket activation: the app gets systemd's listening socket as fd 3 with
// LISTEN_FDS, LISTEN_FDNAMES and LISTEN_PID its own PID, and answers on it.
func testUnitSocketActivation(t *testing.T, m *vm.Machine) {
	vmWriteFile(t, m, "/etc/systemd/system/orbit-sdapp.socket", "[Socket]\nListenStream=127.0.0.1:8123\n")
	vmWriteFile(t, m, "/etc/systemd/system/orbit-sdapp.service", `[Service]
Delegate=yes
ExecStart=`+orbitBin+` run sdapp --exec=/sdapp -- listen
`)
	mustVMRun(t, m, "systemctl daemon-reload && systemctl start orbit-sdapp.socket")
	r := vmRun(t, m, "exec 3<>/dev/tcp/127.0.0.1/8123 && head -1 <&3")
	line := strings.TrimSpace(r.Stdout)
	f := map[string]string{}
	for _, kv := range strings.Fields(line) {
		if k, v, ok := strings.Cut(kv, "="); ok {
			f[k] = v
		}
	}
	if !strings.HasPrefix(line, "sdapp-activated") || f["LISTEN_PID"] != f["pid"] || f["LISTEN_FDS"] != "1" || f["LISTEN_FDNAMES"] != "orbit-sdapp.socket" {
		t.Errorf("the activated app answered %q (exit %d, %s)\n%s", line, r.Code, r.Stderr, tail(journal(t, m, "orbit-sdapp"), 10))
	}
	vmRun(t, m, "systemctl stop orbit-sdapp.socket orbit-sdapp.service")
}

// A unit whose image is missing fails with a message that says so, and
// leaves no pod behind.
func testUnitMissingImage(t *testing.T, m *vm.Machine) {
	before := podDirs(t, m)
	vmRun(t, m, "systemd-run --unit=orbit-missing -p Delegate=yes --wait "+orbitBin+" run no-such-image:1")
	j := journal(t, m, "orbit-missing")
	t.Logf("journal of orbit-missing:\n%s", j)
	if !strings.Contains(j, "no-such-image") {
		t.Errorf("the journal does not name the missing image")
	}
	if p := unitProps(t, m, "orbit-missing", "Result"); p["Result"] != "exit-code" {
		t.Errorf("unit result %v, want exit-code", p)
	}
	if after := podDirs(t, m); len(after) != len(before) {
		t.Errorf("pod directories before %v, after %v", before, after)
	}
}

// A fly pod's app (no pod init, the host's PID namespace) reaches systemd
// through the relay too: etcd-member.service and flanneld.service rely on it.
func testUnitNotifyFly(t *testing.T, m *vm.Machine) {
	vmWriteFile(t, m, "/etc/systemd/system/orbit-notify-fly.service", `[Service]
Type=notify
Delegate=yes
ExecStart=`+orbitBin+` run --stage1-name=fly sdapp --exec=/sdapp -- notify /sdapp
`)
	mustVMRun(t, m, "systemctl daemon-reload && systemctl start orbit-notify-fly")
	if p := unitProps(t, m, "orbit-notify-fly", "ActiveState", "StatusText"); p["ActiveState"] != "active" || p["StatusText"] != "ready from sdapp" {
		t.Errorf("fly pod after READY=1: %v", p)
	}
	mustVMRun(t, m, "systemctl stop orbit-notify-fly")
}

// The units in systemd-units/, installed as make install would, pass
// systemd-analyze verify, and orbit-gc.service runs.
func testShippedUnits(t *testing.T, m *vm.Machine) {
	var paths []string
	for _, n := range units.Names() {
		u, err := units.Unit(n, "/usr/local/bin")
		if err != nil {
			t.Fatal(err)
		}
		p := "/etc/systemd/system/" + n
		vmWriteFile(t, m, p, u)
		paths = append(paths, p)
	}
	mustVMRun(t, m, "systemctl daemon-reload")
	if r := vmRun(t, m, "systemd-analyze verify "+strings.Join(paths, " ")); r.Code != 0 || strings.TrimSpace(r.Stderr) != "" {
		t.Errorf("systemd-analyze verify: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	mustVMRun(t, m, "systemctl start orbit-gc.service")
	if p := unitProps(t, m, "orbit-gc.service", "Result"); p["Result"] != "success" {
		t.Errorf("orbit-gc.service: %v\n%s", p, journal(t, m, "orbit-gc"))
	}
}
