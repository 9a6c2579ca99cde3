//go:build functional

package functional

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The test network: a bridge and a subnet of its own, so tests do not
// clash with orbit0 or each other, address leases under the test's
// directory, a default route (portmap needs one to answer), IP masquerade
// and port forwarding like the built-in default, and a DNS server to see
// in resolv.conf.
const (
	testBridge  = "orbft0"
	testGateway = "10.199.0.1"
	testDNS     = "10.199.0.53"
)

// netEnv is an env whose pods can use the real CNI plugins of the build.
type netEnv struct {
	*env
	ipamDir string
}

// newNetEnv makes an env with the test network "ftnet" in net.d. Its
// cleanup, which runs after the env's (so after gc), fails the test if a
// pod left a veth, an address lease, or a firewall rule, and removes the
// bridges the test made.
func newNetEnv(t *testing.T) *netEnv {
	t.Helper()
	links := hostLinks(t)
	rulesBefore := cniRules(t)
	hadHostportTable := exec.Command("nft", "list", "table", "ip", "cni_hostport").Run() == nil
	hadNatTable := exec.Command("nft", "list", "table", "ip", "nat").Run() == nil
	// The bridge plugin turns on forwarding for its gateway.
	const fwd = "/proc/sys/net/ipv4/ip_forward"
	forwarding, err := os.ReadFile(fwd)
	if err != nil {
		t.Fatal(err)
	}
	var ne *netEnv
	t.Cleanup(func() {
		if ne == nil {
			return
		}
		for l := range hostLinks(t) {
			if links[l] {
				continue
			}
			if strings.HasPrefix(l, "veth") {
				t.Errorf("cleanup: veth %s left on the host", l)
			}
			if err := exec.Command("ip", "link", "del", l).Run(); err != nil {
				t.Errorf("cleanup: delete %s: %v", l, err)
			}
		}
		after := cniRules(t)
		if after != rulesBefore {
			t.Errorf("cleanup: firewall rules left:\nbefore:\n%s\nafter:\n%s", rulesBefore, after)
		}
		// portmap keeps its table, chains without rules, for the next pod;
		// the test made it, the test removes it.
		if !hadHostportTable {
			_ = exec.Command("nft", "delete", "table", "ip", "cni_hostport").Run()
		}
		// So does iptables-nft (the bridge's ipMasq) with the nat table.
		if !hadNatTable && after == rulesBefore {
			_ = exec.Command("nft", "delete", "table", "ip", "nat").Run()
		}
		if err := os.WriteFile(fwd, forwarding, 0o644); err != nil {
			t.Errorf("cleanup: restore %s: %v", fwd, err)
		}
		// The leases live outside the env's directory, which the env's own
		// cleanup (after its gc) has removed by now.
		if leases := ipamLeases(ne.ipamDir); len(leases) > 0 {
			t.Errorf("cleanup: address leases left: %v", leases)
		}
		os.RemoveAll(ne.ipamDir)
	})
	e := newEnv(t)
	ipam, err := os.MkdirTemp("", "orbit-ft-ipam-")
	if err != nil {
		t.Fatal(err)
	}
	ne = &netEnv{env: e, ipamDir: ipam}
	conf := fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "ftnet",
  "plugins": [
    {"type": "bridge", "bridge": %q, "isGateway": true, "isDefaultGateway": true,
     "ipMasq": true, "hairpinMode": true,
     "dns": {"nameservers": [%q], "search": ["ft.test"]},
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.199.0.0/24"}]], "dataDir": %q}},
    {"type": "portmap", "backend": "nftables", "capabilities": {"portMappings": true}}
  ]
}`, testBridge, testDNS, ne.ipamDir)
	if err := os.MkdirAll(filepath.Join(e.conf, "net.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.conf, "net.d", "10-ftnet.conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	e.fetchDemo()
	return ne
}

// pluginDir is the flag that points orbit at the build's CNI plugins.
func pluginDir() string { return "--net-plugin-dir=" + filepath.Join(build, "cni") }

func hostLinks(t *testing.T) map[string]bool {
	t.Helper()
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, i := range ifs {
		out[i.Name] = true
	}
	return out
}

// cniRules are the lines of the host's firewall that a pod's network puts
// there: forwarding and masquerade of the test's and orbit's subnets,
// per-pod CNI chains. (The empty tables and chains plugins keep for the
// next pod are not a pod's.)
func cniRules(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	re := regexp.MustCompile(`10\.199\.|172\.3[01]\.|dnat|dport|-A CNI-|orbit|orbft`)
	for _, c := range [][]string{{"nft", "list", "ruleset"}, {"iptables-save"}} {
		out, err := exec.Command(c[0], c[1:]...).Output()
		if err != nil {
			t.Fatalf("%v: %v", c, err)
		}
		for _, l := range strings.Split(string(out), "\n") {
			if re.MatchString(l) && !strings.HasPrefix(l, "#") {
				b.WriteString(l + "\n")
			}
		}
	}
	return b.String()
}

// ipamLeases are the addresses host-local holds under dir.
func ipamLeases(dir string) []string {
	var out []string
	fs, _ := filepath.Glob(filepath.Join(dir, "*", "*"))
	for _, f := range fs {
		if net.ParseIP(filepath.Base(f)) != nil {
			out = append(out, filepath.Base(f))
		}
	}
	return out
}

// bridgePorts are the interfaces enslaved to a bridge. It asks netlink,
// not /sys, so that it sees the test's own network namespace when the
// tests run in one (sysfs shows the namespace it was mounted in).
func bridgePorts(bridge string) []string {
	out, _ := exec.Command("ip", "-o", "link", "show", "master", bridge).Output()
	var ports []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(l); len(f) > 1 {
			name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
			ports = append(ports, name)
		}
	}
	return ports
}

// podIP is the pod's address on its first network, from status.
func (e *netEnv) podIP(uuid string) string {
	e.t.Helper()
	st := lines(e.mustOrbit("status", uuid))
	n := st["networks"]
	_, ip, ok := strings.Cut(strings.Split(n, ",")[0], ":")
	if !ok {
		e.t.Fatalf("status shows no network: %v", st)
	}
	return ip
}

// hostServer serves "hello from the host" on every address of the host
// until the test ends, for pods to reach through their bridge; it returns
// the port.
func hostServer(t *testing.T) int {
	l, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello from the host")
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().(*net.TCPAddr).Port
}

func TestPodOnDefaultNetworkGetsAddressAndReachesHost(t *testing.T) {
	e := newNetEnv(t)
	port := hostServer(t)
	uuid := filepath.Join(e.root, "uuid")
	r := e.orbit("run", "--net=default", pluginDir(), "--uuid-file-save="+uuid, "demo", "--exec=/bin/sh", "--", "-c",
		fmt.Sprintf("ip -4 -o addr show eth0; ip route; wget -q -O - http://172.31.0.1:%d/", port))
	if r.code != 0 {
		t.Fatalf("run: exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	if !regexp.MustCompile(`inet 172\.31\.\d+\.\d+/16`).MatchString(r.stdout) || !strings.Contains(r.stdout, "default via 172.31.0.1") {
		t.Errorf("the pod has no address and route on orbit0's range:\n%s", r.stdout)
	}
	if !strings.Contains(r.stdout, "hello from the host") {
		t.Errorf("the pod did not reach the host:\n%s", r.stdout)
	}
	b, _ := os.ReadFile(uuid)
	st := lines(e.mustOrbit("status", strings.TrimSpace(string(b))))
	if !regexp.MustCompile(`^default:172\.31\.\d+\.\d+$`).MatchString(st["networks"]) {
		t.Errorf("status networks=%q", st["networks"])
	}
	if ms := mountsUnder(e.root); len(ms) != 0 {
		t.Errorf("mounts left after the pod exited (its netns file?): %v", ms)
	}
	// The built-in network keeps its leases under --dir: released on exit.
	if leases := ipamLeases(filepath.Join(e.data, "net", "ipam")); len(leases) != 0 {
		t.Errorf("leases left after the pod exited: %v", leases)
	}
}

func TestTwoPodsReachEachOtherAndForwardedPortFromHost(t *testing.T) {
	e := newNetEnv(t)
	hostPort := freePort(t)
	uuid, wait := e.startPod("--net=ftnet", pluginDir(), fmt.Sprintf("--port=80:%d", hostPort), "demo", "--exec=/bin/sh", "--", "-c",
		"mkdir /www && echo served-by-a > /www/index.html && exec httpd -f -p 80 -h /www")
	defer func() { e.mustOrbit("stop", uuid); wait() }()
	ipA := e.podIP(uuid)
	var info []struct {
		Networks []struct{ Name, IfName string }
	}
	if err := json.Unmarshal([]byte(e.mustOrbit("list", "--format=json")), &info); err != nil || len(info) != 1 || len(info[0].Networks) != 1 || info[0].Networks[0].Name != "ftnet" {
		t.Errorf("list --format=json networks: %+v %v", info, err)
	}
	// Pod to pod, pod to host port (hairpin through the host), and resolv.conf
	// from the network's DNS.
	r := e.orbit("run", "--net=ftnet", pluginDir(), "demo", "--exec=/bin/sh", "--", "-c",
		fmt.Sprintf("wget -q -O - http://%s/ && wget -q -O - http://%s:%d/ && cat /etc/resolv.conf", ipA, testGateway, hostPort))
	if r.code != 0 || strings.Count(r.stdout, "served-by-a") != 2 {
		t.Fatalf("pod B did not reach pod A directly and through the forwarded port: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "nameserver "+testDNS) || !strings.Contains(r.stdout, "search ft.test") {
		t.Errorf("resolv.conf not from the network's DNS:\n%s", r.stdout)
	}
	// From the host, through the bridge's address.
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(fmt.Sprintf("http://%s:%d/", testGateway, hostPort))
	if err != nil {
		t.Fatalf("forwarded port from the host: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.TrimSpace(string(body)) != "served-by-a" {
		t.Errorf("forwarded port from the host served %q", body)
	}
}

func TestNetHostSharesHostInterfacesAndNoneHasOnlyLoopback(t *testing.T) {
	e := newNetEnv(t)
	devs := `sed -n '3,$p' /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | tr '\n' ' '`
	out := e.mustOrbit("run", "--net=host", "demo", "--exec=/bin/sh", "--", "-c", devs)
	for l := range hostLinks(t) {
		if !strings.Contains(" "+out, " "+l+" ") {
			t.Errorf("--net=host: the pod does not see the host's %s: %q", l, out)
		}
	}
	if out := e.mustOrbit("run", "--net=none", "demo", "--exec=/bin/sh", "--", "-c", devs); out != "lo " {
		t.Errorf("--net=none: interfaces %q, want only lo", out)
	}
	if out := e.mustOrbit("run", "demo", "--exec=/bin/sh", "--", "-c", devs); out != "lo " {
		t.Errorf("no --net: interfaces %q, want only lo", out)
	}
}

func TestKilledSupervisorsNetworkIsReleasedByGC(t *testing.T) {
	e := newNetEnv(t)
	uuid, wait := e.startPod("--net=ftnet", pluginDir(), fmt.Sprintf("--port=80:%d", freePort(t)), "demo", "--exec=/bin/sh", "--", "-c", "while true; do sleep 0.1; done")
	ip := e.podIP(uuid)
	if got := ipamLeases(e.ipamDir); len(got) != 1 || got[0] != ip {
		t.Fatalf("leases %v, want [%s]", got, ip)
	}
	if len(bridgePorts(testBridge)) != 1 {
		t.Fatalf("bridge ports %v, want the pod's veth", bridgePorts(testBridge))
	}
	sup := e.started[len(e.started)-1]
	if err := sup.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	wait()
	waitFor(t, "the pod to be dead", 10*time.Second, func() bool {
		return lines(e.mustOrbit("status", uuid))["state"] == "dead"
	})
	if got := ipamLeases(e.ipamDir); len(got) != 1 {
		t.Fatalf("the lease went before gc: %v", got)
	}
	e.mustOrbit("gc", "--grace-period=0")
	if got := ipamLeases(e.ipamDir); len(got) != 0 {
		t.Errorf("leases after gc: %v", got)
	}
	if p := bridgePorts(testBridge); len(p) != 0 {
		t.Errorf("veths left on the bridge after gc: %v", p)
	}
	if ms := mountsUnder(e.root); len(ms) != 0 {
		t.Errorf("mounts left after gc (the netns?): %v", ms)
	}
}

func TestBadNetworkInputFailsInOneLineAndLeavesNothing(t *testing.T) {
	e := newNetEnv(t)
	oneLine := func(what string, r result, want string) {
		t.Helper()
		msg := strings.TrimSpace(r.stderr)
		if r.code == 0 || strings.Count(msg, "\n") != 0 || !strings.Contains(msg, want) {
			t.Errorf("%s: exit %d, stderr %q; want one line with %q", what, r.code, r.stderr, want)
		}
	}
	bad := filepath.Join(e.root, "bad.d")
	if err := os.MkdirAll(bad, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bad, "bad.conflist"), []byte(`{"name": "bad", "plugins": [`), 0o644); err != nil {
		t.Fatal(err)
	}
	oneLine("malformed conflist", e.orbit("run", "--net=bad", "--net-config-dir="+bad, pluginDir(), "demo", "--exec=/bin/true"), "bad.conflist")
	oneLine("missing plugin", e.orbit("run", "--net=ftnet", "--net-plugin-dir="+e.root, "demo", "--exec=/bin/true"), `plugin "bridge" not found`)
	oneLine("unknown network", e.orbit("run", "--net=nosuch", pluginDir(), "demo", "--exec=/bin/true"), `no network "nosuch"`)

	hostPort := freePort(t)
	uuid, wait := e.startPod("--net=ftnet:IP=10.199.0.50", pluginDir(), fmt.Sprintf("--port=80:%d", hostPort), "demo", "--exec=/bin/sh", "--", "-c", "while true; do sleep 0.1; done")
	defer func() { e.mustOrbit("stop", uuid); wait() }()
	if ip := e.podIP(uuid); ip != "10.199.0.50" {
		t.Fatalf("--net=ftnet:IP=10.199.0.50 got %s", ip)
	}
	oneLine("address in use", e.orbit("run", "--net=ftnet:IP=10.199.0.50", pluginDir(), "demo", "--exec=/bin/true"), "10.199.0.50")
	oneLine("port forwarded to another pod", e.orbit("run", "--net=ftnet", pluginDir(), fmt.Sprintf("--port=80:%d", hostPort), "demo", "--exec=/bin/true"), "forwarded to pod "+uuid)
	l, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	oneLine("port in use on the host", e.orbit("run", "--net=ftnet", pluginDir(), fmt.Sprintf("--port=80:%d", l.Addr().(*net.TCPAddr).Port), "demo", "--exec=/bin/true"), "is in use")

	// The failed pod's partial network is gone: only the first pod's veth
	// and lease are left.
	if p := bridgePorts(testBridge); len(p) != 1 {
		t.Errorf("bridge ports %v, want only the running pod's", p)
	}
	if got := ipamLeases(e.ipamDir); len(got) != 1 || got[0] != "10.199.0.50" {
		t.Errorf("leases %v, want only the running pod's", got)
	}
}

func TestSeveralNetworksGiveOneInterfaceEachAndRestrictedHasNoRouteOut(t *testing.T) {
	e := newNetEnv(t)
	uuid := filepath.Join(e.root, "uuid")
	out := e.mustOrbit("run", "--net=default-restricted", "--net=ftnet", pluginDir(), "--uuid-file-save="+uuid, "demo", "--exec=/bin/sh", "--", "-c",
		"ip -4 -o addr show; ip route; wget -q -O /dev/null http://172.30.0.1:1/ 2>&1; true")
	if !regexp.MustCompile(`eth0\s+inet 172\.30\.\d+\.\d+/16`).MatchString(out) || !regexp.MustCompile(`eth1\s+inet 10\.199\.0\.\d+/24`).MatchString(out) {
		t.Errorf("want eth0 on default-restricted and eth1 on ftnet:\n%s", out)
	}
	if strings.Contains(out, "default via 172.30.") || !strings.Contains(out, "default via "+testGateway) {
		t.Errorf("default-restricted must not route off the host, ftnet must:\n%s", out)
	}
	// The host answers on the restricted bridge (a refused connection, not
	// an unreachable network).
	if !strings.Contains(out, "refused") {
		t.Errorf("the pod did not reach the host on default-restricted:\n%s", out)
	}
	b, _ := os.ReadFile(uuid)
	st := lines(e.mustOrbit("status", strings.TrimSpace(string(b))))
	if !regexp.MustCompile(`^default-restricted:172\.30\.\d+\.\d+,ftnet:10\.199\.0\.\d+$`).MatchString(st["networks"]) {
		t.Errorf("status networks=%q", st["networks"])
	}
}
