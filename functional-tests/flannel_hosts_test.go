//go:build functional

package functional

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The two-host topology: a bridge of the test's own in the root namespace,
// on a private range nothing else here uses, and two network namespaces as
// hosts on it. etcd listens on the bridge's address; each host runs
// flanneld and orbit inside its namespace.
const (
	hostsBridge    = "oft-br0"
	hostsBridgeIP  = "192.168.250.1"
	flannelNetwork = "10.197.0.0/16"
)

var flannelHosts = []struct{ netns, veth, addr string }{
	{"oft-h1", "oft-v1", "192.168.250.11"},
	{"oft-h2", "oft-v2", "192.168.250.12"},
}

// TestPodsOnTwoHostsReachEachOtherOverFlannel runs the real flanneld (vxlan
// backend, etcd subnet manager) on two hosts sharing one etcd, and an orbit
// pod on each host on the flannel network: each pod gets an address from its
// host's lease, and the pod on host 1 pings the pod on host 2 and fetches a
// page from its TCP server, across the vxlan overlay.
func TestPodsOnTwoHostsReachEachOtherOverFlannel(t *testing.T) {
	tools := filepath.Join(build, "tools")
	for _, f := range []string{"orbit-flanneld", "orbit-test-etcd"} {
		if _, err := os.Stat(filepath.Join(tools, f)); err != nil {
			t.Fatalf("the flannel test needs build/tools (make test-tools): %v", err)
		}
	}
	root, err := os.MkdirTemp("", "orbit-ft-flannel-")
	if err != nil {
		t.Fatal(err)
	}
	// Registered first, so it runs last: after the pods, flanneld and etcd.
	t.Cleanup(func() { _ = os.RemoveAll(root) })
	makeHosts(t)

	endpoint := startEtcd(t, filepath.Join(root, "etcd"))
	etcdPut(t, endpoint, "/coreos.com/network/config",
		fmt.Sprintf(`{"Network":%q,"Backend":{"Type":"vxlan"}}`, flannelNetwork))

	var subnets [2]string
	var envs [2]*netEnv
	for i, h := range flannelHosts {
		subnetFile := filepath.Join(root, h.netns, "subnet.env")
		startFlanneld(t, h.netns, endpoint, subnetFile, filepath.Join(root, h.netns+"-flanneld.log"))
		subnets[i] = subnetEnv(t, subnetFile)["FLANNEL_SUBNET"]
		envs[i] = newFlannelHostEnv(t, h.netns, subnetFile, filepath.Join(root, h.netns, "ipam"))
	}
	if subnets[0] == subnets[1] {
		t.Fatalf("both hosts leased %s", subnets[0])
	}

	uuid2, wait2 := envs[1].startPod("--net=oftflannel", pluginDir(), "demo", "--exec=/bin/sh", "--", "-c",
		"mkdir /www && echo served-by-host-2 > /www/index.html && exec httpd -f -p 8080 -h /www")
	defer func() { envs[1].mustOrbit("stop", uuid2); wait2() }()
	ip2 := envs[1].podIP(uuid2)
	if !inSubnet(ip2, subnets[1]) {
		t.Errorf("pod on host 2 has %s, outside host 2's lease %s", ip2, subnets[1])
	}

	// busybox ping needs a raw socket, which the default capabilities leave out.
	r := envs[0].orbit("run", "--net=oftflannel", pluginDir(), "demo", "--caps-retain=CAP_NET_RAW", "--exec=/bin/sh", "--", "-c",
		fmt.Sprintf("ip -4 -o addr show eth0 && ping -c 2 -W 5 %s && wget -q -O - http://%s:8080/", ip2, ip2))
	if r.code != 0 || !strings.Contains(r.stdout, "served-by-host-2") {
		t.Fatalf("pod on host 1 did not ping and fetch from the pod on host 2 (%s): exit %d\n%s%s", ip2, r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "2 packets received") {
		t.Errorf("ping from host 1 to host 2's pod lost packets:\n%s", r.stdout)
	}
	if f := strings.Fields(r.stdout); len(f) < 4 || !inSubnet(strings.Split(f[3], "/")[0], subnets[0]) {
		t.Errorf("pod on host 1 is not in host 1's lease %s:\n%s", subnets[0], r.stdout)
	}
}

// makeHosts builds the bridge and the two host namespaces, and removes them
// at cleanup, checking that the root namespace is left with the links and
// firewall it had: everything flannel adds lives inside the hosts.
func makeHosts(t *testing.T) {
	t.Helper()
	linksBefore := hostLinks(t)
	rulesBefore := ruleset(t)
	t.Cleanup(func() {
		// Deleting the veths first: a deleted namespace's links go
		// asynchronously, after the check below.
		for _, h := range flannelHosts {
			_ = exec.Command("ip", "link", "del", h.veth).Run()
			_ = exec.Command("ip", "netns", "del", h.netns).Run()
		}
		_ = exec.Command("ip", "link", "del", hostsBridge).Run()
		for l := range hostLinks(t) {
			if !linksBefore[l] {
				t.Errorf("cleanup: link %s left in the root namespace", l)
				_ = exec.Command("ip", "link", "del", l).Run()
			}
		}
		if after := ruleset(t); after != rulesBefore {
			t.Errorf("cleanup: the root namespace's firewall changed:\nbefore:\n%s\nafter:\n%s", rulesBefore, after)
		}
	})
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v: %s", args, err, out)
		}
	}
	run("ip", "link", "add", hostsBridge, "type", "bridge")
	run("ip", "addr", "add", hostsBridgeIP+"/24", "dev", hostsBridge)
	run("ip", "link", "set", hostsBridge, "up")
	for _, h := range flannelHosts {
		run("ip", "netns", "add", h.netns)
		run("ip", "link", "add", h.veth, "type", "veth", "peer", "name", "eth0", "netns", h.netns)
		run("ip", "link", "set", h.veth, "master", hostsBridge, "up")
		run("ip", "-n", h.netns, "addr", "add", h.addr+"/24", "dev", "eth0")
		run("ip", "-n", h.netns, "link", "set", "eth0", "up")
		run("ip", "-n", h.netns, "link", "set", "lo", "up")
	}
}

// ruleset is the root namespace's whole firewall (iptables-nft included).
func ruleset(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("nft", "list", "ruleset").Output()
	if err != nil {
		t.Fatalf("nft list ruleset: %v", err)
	}
	return string(out)
}

// startEtcd runs a single-member etcd on the bridge's address, stopped and
// its data removed at cleanup, and returns its client URL once it serves.
func startEtcd(t *testing.T, dataDir string) string {
	t.Helper()
	port := func() int {
		l, err := net.Listen("tcp", hostsBridgeIP+":0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port
	}
	client := fmt.Sprintf("http://%s:%d", hostsBridgeIP, port())
	peer := fmt.Sprintf("http://%s:%d", hostsBridgeIP, port())
	c := exec.Command(filepath.Join(build, "tools", "orbit-test-etcd"), "-data-dir="+dataDir, "-client-url="+client, "-peer-url="+peer)
	var stderr bytes.Buffer
	c.Stderr = &stderr
	stdout, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatalf("starting etcd: %v", err)
	}
	exited := make(chan struct{})
	t.Cleanup(func() {
		_ = c.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = c.Process.Kill()
			<-exited
		}
		_ = os.RemoveAll(dataDir)
	})
	ready := make(chan bool, 1)
	go func() {
		s := bufio.NewScanner(stdout)
		ok := s.Scan() && strings.HasPrefix(s.Text(), "ready ")
		ready <- ok
		for s.Scan() {
		}
		_ = c.Wait()
		close(exited)
	}()
	select {
	case ok := <-ready:
		if !ok {
			<-exited
			t.Fatalf("etcd did not start: %s", stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("etcd not ready within a minute: %s", stderr.String())
	}
	return client
}

// etcdPut writes key through etcd's v3 API (its JSON gateway), as etcdctl
// put would, so the test needs no etcd client of its own.
func etcdPut(t *testing.T, endpoint, key, value string) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{
		"key":   base64.StdEncoding.EncodeToString([]byte(key)),
		"value": base64.StdEncoding.EncodeToString([]byte(value)),
	})
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Post(endpoint+"/v3/kv/put", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("etcd put %s: %v", key, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("etcd put %s: %s", key, resp.Status)
	}
}

// startFlanneld runs flanneld in the host's namespace and waits for it to
// write its subnet file; it is stopped at cleanup. Its traffic rules and
// flannel.1 are inside the namespace and go with it.
func startFlanneld(t *testing.T, netns, endpoint, subnetFile, logFile string) {
	t.Helper()
	log, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	c := exec.Command("ip", "netns", "exec", netns, filepath.Join(build, "tools", "orbit-flanneld"),
		"-etcd-endpoints="+endpoint, "-subnet-file="+subnetFile, "-iface=eth0", "-ip-masq")
	c.Stdout, c.Stderr = log, log
	if err := c.Start(); err != nil {
		t.Fatalf("starting flanneld in %s: %v", netns, err)
	}
	exited := make(chan struct{})
	go func() { _ = c.Wait(); log.Close(); close(exited) }()
	t.Cleanup(func() {
		_ = c.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = c.Process.Kill()
			<-exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(logFile)
			t.Logf("flanneld in %s:\n%s", netns, b)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(subnetFile); err == nil {
			return
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(logFile)
			t.Fatalf("flanneld in %s exited before writing %s:\n%s", netns, subnetFile, b)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logFile)
			t.Fatalf("flanneld in %s wrote no %s within 30s:\n%s", netns, subnetFile, b)
		}
	}
}

// subnetEnv reads a subnet.env, checking it has what the CNI plugin needs.
func subnetEnv(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	env := lines(string(b))
	if env["FLANNEL_NETWORK"] != flannelNetwork || !inSubnet(strings.Split(env["FLANNEL_SUBNET"], "/")[0], flannelNetwork) || env["FLANNEL_MTU"] == "" {
		t.Fatalf("%s:\n%s", path, b)
	}
	return env
}

// newFlannelHostEnv is an orbit installation on a host: orbit runs in the
// host's namespace, with the network "oftflannel" over that host's
// subnet.env. Its cleanup (gc, in the namespace) runs before the host's;
// address leases are kept in ipamDir, outside the env, to be checked after.
func newFlannelHostEnv(t *testing.T, netns, subnetFile, ipamDir string) *netEnv {
	t.Helper()
	var ne *netEnv
	// Registered before the env's, so it checks after gc.
	t.Cleanup(func() {
		if ne == nil {
			return
		}
		if leases := ipamLeases(ne.ipamDir); len(leases) > 0 {
			t.Errorf("cleanup: address leases left on %s: %v", netns, leases)
		}
	})
	e := newEnv(t)
	e.netns = netns
	ne = &netEnv{env: e, ipamDir: ipamDir}
	conf := fmt.Sprintf(`{"cniVersion": "1.0.0", "name": "oftflannel", "plugins": [
  {"type": "flannel", "subnetFile": %q, "dataDir": %q, "ipam": {"dataDir": %q}}]}`,
		subnetFile, filepath.Join(e.root, "flannel"), ne.ipamDir)
	if err := os.MkdirAll(filepath.Join(e.conf, "net.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.conf, "net.d", "10-oftflannel.conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	e.fetchDemo()
	return ne
}

func inSubnet(addr, cidr string) bool {
	_, n, err := net.ParseCIDR(cidr)
	return err == nil && n.Contains(net.ParseIP(addr))
}
