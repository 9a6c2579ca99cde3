//go:build functional

package functional

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/orbit-pods/orbit/os/diskimage"
	"github.com/orbit-pods/orbit/os/vm"
)

// clusterNet is the test's network: a bridge in a network namespace of its
// own, the host end (etcd) at .1, the machines at .11, .12, ...
const clusterNet = "192.168.77"

// clusterConfig is the Ignition config of machine i: its address on the
// bridge, flanneld against the test's etcd, and the flannel CNI network.
func clusterConfig(t *testing.T, i int) []byte {
	t.Helper()
	data := func(s string) map[string]any { return map[string]any{"source": "data:," + url.PathEscape(s)} }
	mode := func(m int) *int { return &m }
	cfg := map[string]any{
		"ignition": map[string]any{"version": "3.4.0"},
		"storage": map[string]any{"files": []any{
			map[string]any{"path": "/etc/systemd/network/40-cluster.network", "mode": mode(0o644), "contents": data(fmt.Sprintf(
				"[Match]\nMACAddress=%s\n\n[Network]\nAddress=%s.%d/24\nGateway=%s.1\n", clusterMAC(i), clusterNet, 10+i, clusterNet))},
			map[string]any{"path": "/etc/orbit/net.d/10-flannel.conflist", "mode": mode(0o644), "contents": data(
				`{"cniVersion": "1.0.0", "name": "flannel", "plugins": [{"type": "flannel", "subnetFile": "/run/flannel/subnet.env"}]}`)},
		}},
		"systemd": map[string]any{"units": []any{
			map[string]any{"name": "flanneld.service", "enabled": true, "dropins": []any{
				map[string]any{"name": "10-cluster.conf", "contents": fmt.Sprintf(`[Service]
ExecStart=
ExecStart=/usr/local/bin/orbit-flanneld -etcd-endpoints=http://%s.1:2379
`, clusterNet)},
			}},
		}},
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func clusterMAC(i int) string { return fmt.Sprintf("52:54:00:77:00:%02x", i) }

// clusterNetwork makes the namespace, its bridge and a tap per machine,
// removed when the test ends.
func clusterNetwork(t *testing.T, machines int) (netns string) {
	t.Helper()
	name := fmt.Sprintf("orbit-cluster-%d", os.Getpid())
	ipn := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", append([]string{"-n", name}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("ip -n %s %s: %v: %s", name, strings.Join(args, " "), err, out)
		}
	}
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	// Deleting the namespace takes its bridge and taps with it.
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	ipn("link", "set", "lo", "up")
	ipn("link", "add", "br0", "type", "bridge")
	ipn("addr", "add", clusterNet+".1/24", "dev", "br0")
	ipn("link", "set", "br0", "up")
	for i := 1; i <= machines; i++ {
		tap := fmt.Sprintf("tap%d", i)
		ipn("tuntap", "add", "dev", tap, "mode", "tap")
		ipn("link", "set", tap, "master", "br0", "up")
	}
	return "/run/netns/" + name
}

// inNetns runs a command in the test's network namespace.
func inNetns(netns string, args ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"--net=" + netns, "--"}, args...)...)
}

// TestTwoMachineClusterInVM boots two machines of the OS image on a bridge
// in a network namespace the test makes, with a real etcd on the bridge:
// both run flanneld against it (as their first boot's config says), each
// leases its own subnet, and a pod on one reaches a pod on the other by its
// address over the vxlan overlay. Then an update is rolled out to both:
// each agent writes 2.0.0, and the reboot managers reboot them one at a
// time under the etcd semaphore.
func TestTwoMachineClusterInVM(t *testing.T) {
	osTools(t)
	netns := clusterNetwork(t, 2)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	img, next, priv := clusterImages(t, ctx, dir)

	machines := startCluster(t, ctx, netns, dir, img.VMImage(), 2)
	var wg sync.WaitGroup
	errs := make([]error, 2)

	subnets := map[string]bool{}
	for i, m := range machines {
		r := vmRun(t, m, "for i in $(seq 300); do test -s /run/flannel/subnet.env && break; sleep 1; done; cat /run/flannel/subnet.env")
		var subnet string
		for _, l := range strings.Split(r.Stdout, "\n") {
			if v, ok := strings.CutPrefix(l, "FLANNEL_SUBNET="); ok {
				subnet = v
			}
		}
		if !strings.HasPrefix(subnet, "10.199.") {
			t.Fatalf("machine %d has no flannel lease: %q\n%s", i+1, r.Stdout,
				vmRun(t, m, "ip addr; ip route; systemctl status --no-pager flanneld; journalctl -b -o cat -u flanneld --no-pager | tail -20").Stdout)
		}
		subnets[subnet] = true
	}
	if len(subnets) != 2 {
		t.Fatalf("the machines share a subnet: %v", subnets)
	}

	// A web pod on machine 2, on the flannel network.
	mustVMRun(t, machines[1], "orbit fetch oci-archive:/usr/share/orbit-os/demo.oci.tar >/dev/null && "+
		"systemd-run --unit=web -p Delegate=yes /usr/local/bin/orbit run --net=flannel "+
		"--volume=www,kind=host,source=/usr/share/orbit-os/www,readOnly=true demo --mount=volume=www,target=/www "+
		"--exec=/bin/httpd -- -f -p 80 -h /www")
	var ip string
	for range 120 {
		var pods []struct {
			State    string `json:"state"`
			Networks []struct {
				IPs []string `json:"ips"`
			} `json:"networks"`
		}
		out := mustVMRun(t, machines[1], "orbit list --format=json")
		if err := json.Unmarshal([]byte(out), &pods); err != nil {
			t.Fatalf("orbit list: %v: %s", err, out)
		}
		for _, p := range pods {
			if p.State == "running" && len(p.Networks) > 0 && len(p.Networks[0].IPs) > 0 {
				ip, _, _ = strings.Cut(p.Networks[0].IPs[0], "/")
			}
		}
		if ip != "" {
			break
		}
		time.Sleep(time.Second)
	}
	if ip == "" {
		t.Fatalf("the web pod on machine 2 has no address:\n%s", vmRun(t, machines[1], "systemctl status --no-pager web; journalctl -o cat -u web --no-pager | tail").Stdout)
	}
	// A pod on machine 1 fetches its page across the overlay.
	mustVMRun(t, machines[0], "orbit fetch oci-archive:/usr/share/orbit-os/demo.oci.tar >/dev/null")
	// (Not wget -T: Debian's busybox wget crashes with it when the
	// connection fails.)
	r := vmRun(t, machines[0], "orbit run --net=flannel demo --exec=/bin/wget -- -qO- http://"+ip+"/index.html")
	if !strings.Contains(r.Stdout, "hello from an orbit pod") {
		t.Errorf("a pod on machine 1 did not reach the pod at %s on machine 2: exit %d %s %s\nmachine 1:\n%s\nmachine 2:\n%s", ip, r.Code, r.Stdout, r.Stderr,
			vmRun(t, machines[0], "ip route; networkctl list; bridge fdb show dev flannel.1; ip neigh show dev flannel.1").Stdout,
			vmRun(t, machines[1], "ip route; networkctl list; bridge link; bridge fdb show dev flannel.1; ip neigh show dev flannel.1").Stdout)
	}

	// An update rolled out to both: each agent writes 2.0.0 to B, and the
	// reboot managers reboot them one at a time under the etcd semaphore
	// (max 1, Container Linux's default).
	srv := filepath.Join(dir, "srv", "stable")
	if err := os.MkdirAll(srv, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(filepath.Join(build, "bin", "orbit-update"), "payload", "build", "--from-disk", next.Disk,
		"--version", "2.0.0", "--key", priv, "-o", filepath.Join(srv, "2.0.0.payload")).CombinedOutput(); err != nil {
		t.Fatalf("payload build: %v: %s", err, out)
	}
	server := inNetns(netns, filepath.Join(build, "bin", "orbit-update"), "serve", "--dir", filepath.Dir(srv),
		"--listen", clusterNet+".1:8470", "--events", filepath.Join(dir, "events.jsonl"))
	server.Stderr = os.Stderr
	server.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = server.Process.Kill(); _ = server.Wait() })

	ids := map[string]int{}
	for i, m := range machines {
		ids[strings.TrimSpace(mustVMRun(t, m, "cat /etc/machine-id"))] = i + 1
	}
	if len(ids) != 2 {
		t.Fatalf("the machines share a machine ID: %v", ids)
	}
	// The semaphore, read every half second while the update rolls out.
	stopPoll := make(chan struct{})
	var most int
	var holders []string // who held it, in order
	polled := make(chan struct{})
	pollOnce := sync.OnceFunc(func() { close(stopPoll); <-polled })
	t.Cleanup(pollOnce) // a failure before the end stops it too
	go func() {
		defer close(polled)
		semKey := base64.StdEncoding.EncodeToString([]byte("coreos.com/updateengine/rebootlock/semaphore"))
		for {
			select {
			case <-stopPoll:
				return
			case <-time.After(500 * time.Millisecond):
			}
			out, err := inNetns(netns, "/bin/busybox", "wget", "-qO-", "--post-data", `{"key":"`+semKey+`"}`,
				"http://"+clusterNet+".1:2379/v3/kv/range").Output()
			if err != nil {
				continue
			}
			var r struct{ Kvs []struct{ Value []byte } }
			var sem struct{ Holders []string }
			if json.Unmarshal(out, &r) != nil || len(r.Kvs) == 0 || json.Unmarshal(r.Kvs[0].Value, &sem) != nil {
				continue
			}
			most = max(most, len(sem.Holders))
			for _, h := range sem.Holders {
				if len(holders) == 0 || holders[len(holders)-1] != h {
					holders = append(holders, h)
				}
			}
		}
	}()
	start := time.Now()
	for i, m := range machines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = m.WaitReady(ctx)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("machine %d did not come back from its update reboot: %v", i+1, err)
		}
	}
	t.Logf("both machines updated and rebooted in %s", time.Since(start).Round(time.Second))
	for i, m := range machines {
		vmRun(t, m, "systemctl is-system-running --wait")
		if v := strings.TrimSpace(mustVMRun(t, m, ". /etc/os-release; echo $VERSION_ID")); v != "2.0.0" {
			t.Errorf("machine %d runs %q after the update, want 2.0.0", i+1, v)
		}
	}
	// Each released its slot once it was back up.
	waitFor(t, "both machines to release the semaphore", 2*time.Minute, func() bool {
		out, _ := inNetns(netns, "/bin/busybox", "wget", "-qO-", "--post-data",
			`{"key":"`+base64.StdEncoding.EncodeToString([]byte("coreos.com/updateengine/rebootlock/semaphore"))+`"}`,
			"http://"+clusterNet+".1:2379/v3/kv/range").Output()
		return semaphoreFree(out)
	})
	pollOnce()
	t.Logf("semaphore holders in turn: %v (at most %d at once)", holders, most)
	if most > 1 {
		t.Errorf("%d machines held the reboot semaphore at once (max 1)", most)
	}
	seen := map[string]bool{}
	for _, h := range holders {
		seen[h] = true
	}
	for id, i := range ids {
		if !seen[id] {
			t.Errorf("machine %d (%s) never held the semaphore: rebooted without it?", i, id)
		}
	}
	for _, m := range machines {
		pctx, pcancel := context.WithTimeout(ctx, 3*time.Minute)
		if err := m.Poweroff(pctx); err != nil {
			t.Errorf("poweroff: %v", err)
		}
		pcancel()
	}
}

// semaphoreFree says whether an etcd range answer holds a semaphore with
// no holders.
func semaphoreFree(out []byte) bool {
	var r struct{ Kvs []struct{ Value []byte } }
	var sem struct{ Holders []string }
	if json.Unmarshal(out, &r) != nil || len(r.Kvs) == 0 || json.Unmarshal(r.Kvs[0].Value, &sem) != nil {
		return false
	}
	return len(sem.Holders) == 0
}

// clusterImages builds the OS image at 1.0.0 and 2.0.0 with an
// update.conf that points the agent at the test's server and the reboot
// manager at its etcd; priv signs payloads.
func clusterImages(t *testing.T, ctx context.Context, dir string) (base, next *diskimage.Image, priv string) {
	t.Helper()
	image, priv := updateImages(t, ctx, dir, "GROUP=stable\nSERVER=http://"+clusterNet+".1:8470/v1/update/\nREBOOT_STRATEGY=etcd-lock\n"+
		"LOCKSMITHD_ENDPOINT=http://"+clusterNet+".1:2379\n")
	return image("1.0.0"), image("2.0.0"), priv
}

// startCluster starts etcd on the bridge of netns with flannel's network
// config in it, and boots n machines of img on the bridge, each with its
// clusterConfig; they are stopped when the test ends.
func startCluster(t *testing.T, ctx context.Context, netns, dir string, img *vm.Image, n int) []*vm.Machine {
	t.Helper()
	etcd := inNetns(netns, filepath.Join(build, "tools", "orbit-test-etcd"), "-data-dir", filepath.Join(dir, "etcd"),
		"-client-url", "http://"+clusterNet+".1:2379", "-peer-url", "http://"+clusterNet+".1:2380")
	etcdLog, err := os.Create(filepath.Join(dir, "etcd.log"))
	if err != nil {
		t.Fatal(err)
	}
	etcd.Stdout, etcd.Stderr = etcdLog, etcdLog
	etcd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // gone with a killed test binary
	if err := etcd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = etcd.Process.Kill(); _ = etcd.Wait(); etcdLog.Close() })
	// The network config, through etcd's JSON gateway.
	key := base64.StdEncoding.EncodeToString([]byte("/coreos.com/network/config"))
	val := base64.StdEncoding.EncodeToString([]byte(`{"Network":"10.199.0.0/16","Backend":{"Type":"vxlan"}}`))
	waitFor(t, "etcd in the test's namespace", time.Minute, func() bool {
		out, err := inNetns(netns, "/bin/busybox", "wget", "-qO-", "--post-data", `{"key":"`+key+`","value":"`+val+`"}`,
			"http://"+clusterNet+".1:2379/v3/kv/put").CombinedOutput()
		return err == nil && strings.Contains(string(out), "revision")
	})

	machines := make([]*vm.Machine, n)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range machines {
		conf := filepath.Join(dir, fmt.Sprintf("config%d.ign", i+1))
		if err := os.WriteFile(conf, clusterConfig(t, i+1), 0o644); err != nil {
			t.Fatal(err)
		}
		o := diskimage.BootOptions()
		o.FwCfg = map[string]string{"opt/com.coreos/config": conf}
		o.Tap, o.MAC, o.NetNS = fmt.Sprintf("tap%d", i+1), clusterMAC(i+1), netns
		o.MemoryMB = 768
		o.CPUs = 1
		wg.Add(1)
		go func() {
			defer wg.Done()
			bctx, bcancel := context.WithTimeout(ctx, 10*time.Minute)
			defer bcancel()
			m, err := vm.Boot(bctx, img, o)
			if m != nil {
				t.Cleanup(func() {
					if t.Failed() {
						t.Logf("machine %d console:\n%s", i+1, m.Console())
					}
					m.Close()
				})
			}
			machines[i], errs[i] = m, err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("boot machine %d: %v", i+1, err)
		}
	}

	return machines
}
