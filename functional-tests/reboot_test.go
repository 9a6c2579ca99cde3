//go:build functional

package functional

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/orbit-pods/orbit/os/reboot"
)

// The reboot tests' etcd: three members, each in a network namespace of
// its own on a bridge the test makes, as three machines would run it.
const (
	rbBridge   = "rb-br0"
	rbBridgeIP = "192.168.247.1"
)

var rbMembers = []struct{ name, netns, veth, addr string }{
	{"e1", "rb-e1", "rb-v1", "192.168.247.11"},
	{"e2", "rb-e2", "rb-v2", "192.168.247.12"},
	{"e3", "rb-e3", "rb-v3", "192.168.247.13"},
}

type etcdCluster struct {
	procs     []*exec.Cmd
	endpoints []string
}

// startEtcdCluster makes the namespaces and starts Debian's etcd in each;
// everything is stopped and removed at cleanup, pass or fail.
func startEtcdCluster(t *testing.T) *etcdCluster {
	t.Helper()
	etcd, err := exec.LookPath("etcd")
	if err != nil {
		t.Fatalf("the reboot tests need Debian's etcd-server (scripts/install-deps): %v", err)
	}
	dir := t.TempDir()
	linksBefore := hostLinks(t)
	c := &etcdCluster{}
	t.Cleanup(func() {
		for _, p := range c.procs {
			if p.ProcessState == nil {
				_ = p.Process.Kill()
				_ = p.Wait()
			}
		}
		for _, m := range rbMembers {
			_ = exec.Command("ip", "link", "del", m.veth).Run()
			_ = exec.Command("ip", "netns", "del", m.netns).Run()
		}
		_ = exec.Command("ip", "link", "del", rbBridge).Run()
		for l := range hostLinks(t) {
			if !linksBefore[l] {
				t.Errorf("cleanup: link %s left in the root namespace", l)
				_ = exec.Command("ip", "link", "del", l).Run()
			}
		}
	})
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v: %s", args, err, out)
		}
	}
	run("ip", "link", "add", rbBridge, "type", "bridge")
	run("ip", "addr", "add", rbBridgeIP+"/24", "dev", rbBridge)
	run("ip", "link", "set", rbBridge, "up")
	var initial []string
	for _, m := range rbMembers {
		run("ip", "netns", "add", m.netns)
		run("ip", "link", "add", m.veth, "type", "veth", "peer", "name", "eth0", "netns", m.netns)
		run("ip", "link", "set", m.veth, "master", rbBridge, "up")
		run("ip", "-n", m.netns, "addr", "add", m.addr+"/24", "dev", "eth0")
		run("ip", "-n", m.netns, "link", "set", "eth0", "up")
		run("ip", "-n", m.netns, "link", "set", "lo", "up")
		initial = append(initial, fmt.Sprintf("%s=http://%s:2380", m.name, m.addr))
		c.endpoints = append(c.endpoints, fmt.Sprintf("http://%s:2379", m.addr))
	}
	for i, m := range rbMembers {
		log, err := os.Create(filepath.Join(dir, m.name+".log"))
		if err != nil {
			t.Fatal(err)
		}
		defer log.Close()
		p := exec.Command("ip", "netns", "exec", m.netns, etcd,
			"--name", m.name, "--data-dir", filepath.Join(dir, m.name),
			"--listen-client-urls", c.endpoints[i], "--advertise-client-urls", c.endpoints[i],
			"--listen-peer-urls", fmt.Sprintf("http://%s:2380", m.addr),
			"--initial-advertise-peer-urls", fmt.Sprintf("http://%s:2380", m.addr),
			"--initial-cluster", strings.Join(initial, ","),
			"--initial-cluster-token", "rb-test", "--initial-cluster-state", "new")
		p.Stdout, p.Stderr = log, log
		if err := p.Start(); err != nil {
			t.Fatalf("start etcd %s: %v", m.name, err)
		}
		c.procs = append(c.procs, p)
	}
	cl := c.client(t, c.endpoints...)
	deadline := time.Now().Add(90 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := cl.Put(ctx, "rb-test/ready", "yes")
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "e1.log"))
			t.Fatalf("the 3-member etcd did not serve within 90 s: %v\n%s", err, b)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return c
}

func (c *etcdCluster) client(t *testing.T, endpoints ...string) *clientv3.Client {
	t.Helper()
	cl, err := reboot.DialEtcd(endpoints, reboot.TLSFiles{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	return cl
}

// kill stops member i the hard way, as a crashed machine would.
func (c *etcdCluster) kill(t *testing.T, i int) {
	t.Helper()
	_ = c.procs[i].Process.Kill()
	_ = c.procs[i].Wait()
}

// rebootctl runs orbit-rebootctl against the cluster.
func rebootctl(t *testing.T, endpoints []string, args ...string) (string, error) {
	t.Helper()
	args = append([]string{"--endpoint", strings.Join(endpoints, ",")}, args...)
	out, err := exec.Command(filepath.Join(build, "bin", "orbit-rebootctl"), args...).CombinedOutput()
	return string(out), err
}

// machine is one simulated host running orbit-rebootmgr. Its reboot
// command records the reboot and kills the agent (the power goes); the
// test then "boots" it again by starting a fresh agent, as systemd would.
type machine struct {
	id, dir string
	conf    string
}

func newMachine(t *testing.T, id string, endpoints []string, group string) *machine {
	t.Helper()
	m := &machine{id: id, dir: t.TempDir()}
	m.conf = filepath.Join(m.dir, "update.conf")
	conf := fmt.Sprintf("REBOOT_STRATEGY=etcd-lock\nLOCKSMITHD_ENDPOINT=%s\nLOCKSMITHD_GROUP=%s\n", strings.Join(endpoints, ","), group)
	if err := os.WriteFile(m.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return m
}

func (m *machine) requireReboot(t *testing.T) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(m.dir, "reboot-required"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

// start runs the agent with rebootCmd as its reboot command, in its own
// process group, killed with its children at cleanup.
func (m *machine) start(t *testing.T, rebootCmd string) *exec.Cmd {
	t.Helper()
	log, err := os.OpenFile(filepath.Join(m.dir, "agent.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	c := exec.Command(filepath.Join(build, "bin", "orbit-rebootmgr"), "--config", m.conf, "--machine-id", m.id,
		"--reboot-required", filepath.Join(m.dir, "reboot-required"), "--interval", "100ms", "--reboot-command", rebootCmd)
	c.Stdout, c.Stderr = log, log
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.Start(); err != nil {
		t.Fatalf("start orbit-rebootmgr for %s: %v", m.id, err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
		_, _ = c.Process.Wait()
	})
	return c
}

func (m *machine) log() string {
	b, _ := os.ReadFile(filepath.Join(m.dir, "agent.log"))
	return string(b)
}

// waitFor polls cond until it holds; a minute without is a failure.
func rbWaitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting after a minute for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func semaphoreOf(t *testing.T, cl *clientv3.Client, group string) reboot.Semaphore {
	t.Helper()
	s, err := reboot.NewEtcdLock(cl, group).Get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestRebootManagerWithEtcd runs the reboot manager, its CLI and its
// FleetLock server against a real 3-member etcd.
func TestRebootManagerWithEtcd(t *testing.T) {
	for _, b := range []string{"orbit-rebootmgr", "orbit-rebootctl"} {
		if _, err := os.Stat(filepath.Join(build, "bin", b)); err != nil {
			t.Fatalf("needs build/bin/%s (make binaries): %v", b, err)
		}
	}
	c := startEtcdCluster(t)
	t.Run("FleetLockServesTheSameSemaphore", func(t *testing.T) { testFleetLock(t, c) })
	t.Run("KilledHolderShowsInStatusAndIsUnlockedByHand", func(t *testing.T) { testKilledHolder(t, c) })
	t.Run("FiveMachinesMaxTwoNeverExceedTwoWhileAMemberDies", func(t *testing.T) { testFiveMachines(t, c) })
}

func testFleetLock(t *testing.T, c *etcdCluster) {
	srv := exec.Command(filepath.Join(build, "bin", "orbit-rebootmgr"), "fleetlock", "--listen", "127.0.0.1:0",
		"--endpoint", strings.Join(c.endpoints, ","))
	var stderr bytes.Buffer
	srv.Stderr = &stderr
	out, err := srv.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Process.Kill(); _ = srv.Wait() })
	var addr string
	if _, err := fmt.Fscanf(out, "listening %s\n", &addr); err != nil {
		t.Fatalf("fleetlock server did not start: %v: %s", err, stderr.String())
	}
	call := func(path, id string, header bool) (int, reboot.FleetLockError) {
		t.Helper()
		body := fmt.Sprintf(`{"client_params":{"id":%q,"group":"fleet"}}`, id)
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+path, strings.NewReader(body))
		if header {
			req.Header.Set("fleet-lock-protocol", "true")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e reboot.FleetLockError
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			if err := json.Unmarshal(b, &e); err != nil {
				t.Errorf("%s: error body %q is not FleetLock's JSON: %v", path, b, err)
			}
		}
		return resp.StatusCode, e
	}
	if code, e := call("/v1/pre-reboot", "node-a", false); code != http.StatusBadRequest || e.Kind == "" {
		t.Errorf("without the fleet-lock-protocol header: %d %+v, want 400 with a kind", code, e)
	}
	for i := 0; i < 2; i++ { // the second is the idempotent re-take
		if code, e := call("/v1/pre-reboot", "node-a", true); code != http.StatusOK {
			t.Fatalf("pre-reboot node-a (%d): %d %+v", i+1, code, e)
		}
	}
	if code, e := call("/v1/pre-reboot", "node-b", true); code != http.StatusConflict || e.Kind != "failed_lock" {
		t.Errorf("pre-reboot node-b with node-a holding the only slot: %d %+v, want 409 failed_lock", code, e)
	}
	// The same semaphore as etcd-lock's, under the group's key, in
	// Container Linux's format.
	cl := c.client(t, c.endpoints...)
	r, err := cl.Get(context.Background(), "coreos.com/updateengine/rebootlock/groups/fleet/semaphore")
	if err != nil || len(r.Kvs) != 1 || string(r.Kvs[0].Value) != `{"semaphore":0,"max":1,"holders":["node-a"]}` {
		t.Errorf("stored semaphore: %v %v", r, err)
	}
	if st, err := rebootctl(t, c.endpoints, "--group", "fleet", "status"); err != nil || !strings.Contains(st, "node-a") {
		t.Errorf("orbit-rebootctl status of group fleet: %v\n%s", err, st)
	}
	for i := 0; i < 2; i++ {
		if code, e := call("/v1/steady-state", "node-a", true); code != http.StatusOK {
			t.Fatalf("steady-state node-a (%d): %d %+v", i+1, code, e)
		}
	}
	if code, e := call("/v1/pre-reboot", "node-b", true); code != http.StatusOK {
		t.Errorf("pre-reboot node-b after node-a's steady-state: %d %+v", code, e)
	}
}

func testKilledHolder(t *testing.T, c *etcdCluster) {
	const group = "killed"
	// dead takes the only slot and its reboot never finishes; it is then
	// killed. next waits behind it until an administrator unlocks dead.
	dead := newMachine(t, "machine-dead", c.endpoints, group)
	dead.requireReboot(t)
	deadMark := filepath.Join(dead.dir, "rebooting")
	agent := dead.start(t, "touch "+deadMark+"; exec sleep 600")
	rbWaitFor(t, "machine-dead to take the slot and start rebooting", func() bool {
		_, err := os.Stat(deadMark)
		return err == nil
	})
	_ = syscall.Kill(-agent.Process.Pid, syscall.SIGKILL)
	_, _ = agent.Process.Wait()

	next := newMachine(t, "machine-next", c.endpoints, group)
	next.requireReboot(t)
	nextMark := filepath.Join(next.dir, "rebooted")
	next.start(t, "touch "+nextMark)
	rbWaitFor(t, "machine-next to ask for the slot", func() bool { return strings.Contains(next.log(), "waiting for a slot") })

	st, err := rebootctl(t, c.endpoints, "--group", group, "status")
	if err != nil || !strings.Contains(st, "Available: 0") || !strings.Contains(st, "machine-dead") {
		t.Fatalf("status should show machine-dead holding the only slot: %v\n%s", err, st)
	}
	if _, err := os.Stat(nextMark); err == nil {
		t.Fatal("machine-next rebooted while machine-dead held the only slot")
	}
	for i := 0; i < 2; i++ { // unlocking twice is harmless
		if out, err := rebootctl(t, c.endpoints, "--group", group, "unlock", "machine-dead"); err != nil {
			t.Fatalf("unlock machine-dead: %v\n%s", err, out)
		}
	}
	rbWaitFor(t, "machine-next to reboot once the slot is free", func() bool {
		_, err := os.Stat(nextMark)
		return err == nil
	})
	cl := c.client(t, c.endpoints...)
	if s := semaphoreOf(t, cl, group); !slices.Equal(s.Holders, []string{"machine-next"}) {
		t.Errorf("holders %v, want [machine-next] (it keeps the slot across its reboot)", s.Holders)
	}
}

func testFiveMachines(t *testing.T, c *etcdCluster) {
	const group = "five"
	// The watcher and the CLI use members 1 and 2; member 3 dies mid-way.
	cl := c.client(t, c.endpoints[:2]...)
	if out, err := rebootctl(t, c.endpoints[:2], "--group", group, "set-max", "2"); err != nil {
		t.Fatalf("set-max 2: %v\n%s", err, out)
	}
	key := reboot.SemaphoreKey(group)
	r, err := cl.Get(context.Background(), key)
	if err != nil || len(r.Kvs) != 1 {
		t.Fatalf("semaphore after set-max: %v %v", r, err)
	}

	// Every version of the semaphore, from the watch: none may have more
	// than 2 holders.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	maxHolders, versions := 0, 0
	held := map[string]bool{}
	var watchErr error
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		for wr := range cl.Watch(ctx, key, clientv3.WithRev(r.Kvs[0].ModRevision+1)) {
			if err := wr.Err(); err != nil {
				mu.Lock()
				watchErr = err
				mu.Unlock()
				return
			}
			for _, ev := range wr.Events {
				s, err := reboot.ParseSemaphore(ev.Kv.Value)
				mu.Lock()
				if err != nil {
					watchErr = err
				}
				versions++
				maxHolders = max(maxHolders, len(s.Holders))
				for _, h := range s.Holders {
					held[h] = true
				}
				mu.Unlock()
			}
		}
	}()

	var machines []*machine
	for i := 1; i <= 5; i++ {
		m := newMachine(t, fmt.Sprintf("machine-%d", i), c.endpoints, group)
		m.requireReboot(t)
		machines = append(machines, m)
	}
	// Each machine: run the agent until its reboot command kills it, stay
	// down a moment, come back up without /run/reboot-required, and run
	// the agent of the new boot, which gives the slot back.
	var wg sync.WaitGroup
	var rebootsMu sync.Mutex
	reboots := 0
	for _, m := range machines {
		wg.Add(1)
		go func(m *machine) {
			defer wg.Done()
			record := filepath.Join(m.dir, "reboots")
			a := m.start(t, "echo \"$ORBIT_MACHINE_ID\" >> "+record+"; kill -KILL $PPID")
			_, _ = a.Process.Wait()
			rebootsMu.Lock()
			reboots++
			rebootsMu.Unlock()
			time.Sleep(300 * time.Millisecond) // down: the slot stays held
			_ = os.Remove(filepath.Join(m.dir, "reboot-required"))
			m.start(t, "echo \"unexpected second reboot\" >> "+record)
		}(m)
	}
	killed := false
	rbWaitFor(t, "all five machines to reboot and give their slots back", func() bool {
		rebootsMu.Lock()
		n := reboots
		rebootsMu.Unlock()
		if n >= 2 && !killed {
			c.kill(t, 2)
			killed = true
			t.Logf("killed etcd member e3 after %d reboots", n)
		}
		return n == 5 && len(semaphoreOf(t, cl, group).Holders) == 0
	})
	wg.Wait()
	cancel()
	<-watchDone

	mu.Lock()
	defer mu.Unlock()
	if watchErr != nil && ctx.Err() == nil {
		t.Errorf("watching the semaphore: %v", watchErr)
	}
	t.Logf("%d versions of the semaphore, at most %d holders at once", versions, maxHolders)
	if maxHolders > 2 {
		t.Errorf("%d machines held reboot slots at once, max is 2", maxHolders)
	}
	for _, m := range machines {
		b, _ := os.ReadFile(filepath.Join(m.dir, "reboots"))
		if got := strings.Fields(string(b)); !slices.Equal(got, []string{m.id}) {
			t.Errorf("%s reboots recorded: %q, want exactly one\n%s", m.id, b, m.log())
		}
		if !held[m.id] {
			t.Errorf("%s rebooted without ever holding a slot", m.id)
		}
	}
	if !killed {
		t.Error("etcd member e3 was never killed")
	}
}

// TestRebootManagerStrategies runs the agent without etcd: `reboot`
// reboots at once, `off` never, and a window that is closed now holds the
// reboot back.
func TestRebootManagerStrategies(t *testing.T) {
	// A window that opened 12 hours ago for one hour: closed now, on any
	// clock, and it says when it opens next.
	closed := time.Now().Add(-12 * time.Hour)
	for _, c := range []struct {
		name, conf string
		reboots    bool
		logs       string
	}{
		{"reboot", "REBOOT_STRATEGY=reboot\n", true, "rebooting"},
		{"off", "REBOOT_STRATEGY=off\n", false, "reboots are left to the administrator"},
		{"closed window", fmt.Sprintf("REBOOT_STRATEGY=reboot\nLOCKSMITHD_REBOOT_WINDOW_START=%s\nLOCKSMITHD_REBOOT_WINDOW_LENGTH=1h\n",
			closed.Format("15:04")), false, "the window every day"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := &machine{id: "machine-" + strings.ReplaceAll(c.name, " ", "-"), dir: t.TempDir()}
			m.conf = filepath.Join(m.dir, "update.conf")
			if err := os.WriteFile(m.conf, []byte(c.conf), 0o644); err != nil {
				t.Fatal(err)
			}
			m.requireReboot(t)
			mark := filepath.Join(m.dir, "rebooted")
			a := m.start(t, "touch "+mark)
			rbWaitFor(t, "the agent to report "+c.logs, func() bool { return strings.Contains(m.log(), c.logs) })
			if c.reboots {
				rbWaitFor(t, "the reboot command", func() bool { _, err := os.Stat(mark); return err == nil })
			} else if _, err := os.Stat(mark); err == nil {
				t.Errorf("rebooted:\n%s", m.log())
			}
			_ = syscall.Kill(-a.Process.Pid, syscall.SIGTERM)
		})
	}
}
