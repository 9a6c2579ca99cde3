//go:build functional

package functional

import (
	"context"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orbit-pods/orbit/os/vm"
	units "github.com/orbit-pods/orbit/systemd-units"
)

// vmRegistry is where the guest reaches the test's registry.
const vmRegistry = "10.0.2.100:5000"

// binaryRoot makes an image root holding the host binary src at dst with
// the shared libraries ldd names for it.
func binaryRoot(t *testing.T, dir, src, dst string) string {
	t.Helper()
	root := filepath.Join(dir, filepath.Base(dst)+"-root")
	addBinary(t, root, src, dst)
	if err := os.MkdirAll(filepath.Join(root, "tmp"), 0o1777); err != nil {
		t.Fatal(err)
	}
	return root
}

// addBinary copies the host binary src to dst in root, with the shared
// libraries ldd names for it at their own paths.
func addBinary(t *testing.T, root, src, dst string) {
	t.Helper()
	files, err := vm.WithLibraries([]string{src})
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range files {
		to := f
		if i == 0 {
			to = dst
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(root, filepath.Dir(to)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, to), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// flannelRoot is an image root like flannel's: flanneld (orbit-flanneld)
// at /opt/bin/flanneld, and the host's iptables (nft), which flannel's
// traffic rules run.
func flannelRoot(t *testing.T, dir string) string {
	t.Helper()
	root := binaryRoot(t, dir, filepath.Join(build, "tools", "orbit-flanneld"), "/opt/bin/flanneld")
	multi, err := filepath.EvalSymlinks("/usr/sbin/iptables")
	if err != nil {
		t.Skipf("SKIP: no iptables on the host: %v", err)
	}
	addBinary(t, root, multi, "/usr/sbin/xtables-nft-multi")
	for _, n := range []string{"iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save", "ip6tables-restore"} {
		if err := os.Symlink("xtables-nft-multi", filepath.Join(root, "usr/sbin", n)); err != nil {
			t.Fatal(err)
		}
	}
	// The match and target extensions iptables loads by name.
	ext := "/usr/lib/x86_64-linux-gnu/xtables"
	if err := os.MkdirAll(filepath.Join(root, filepath.Dir(ext)), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", ext, filepath.Join(root, filepath.Dir(ext))).CombinedOutput(); err != nil {
		t.Fatalf("copy %s: %v: %s", ext, err, out)
	}
	for _, d := range []string{"run", "etc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// pushImage packs root as an image and pushes it to the registry at addr
// as name.
func pushImage(t *testing.T, dir, addr, root, name string, args ...string) {
	t.Helper()
	archive := filepath.Join(dir, strings.NewReplacer("/", "_", ":", "_").Replace(name)+".oci.tar")
	a := append([]string{"--layer", root, "--name", "img:test", "-o", archive}, args...)
	if out, err := exec.Command(filepath.Join(build, "bin", "orbit-mkimage"), a...).CombinedOutput(); err != nil {
		t.Fatalf("orbit-mkimage %s: %v\n%s", name, err, out)
	}
	skopeoCopy(t, "oci-archive:"+archive, "docker://"+addr+"/"+name)
}

// TestFlyUnitsInVM runs the shipped etcd-member.service and
// flanneld.service as they are, under systemd: their images (Debian's
// etcd; orbit-flanneld with the host's iptables) fetched from a registry,
// each in a fly pod reporting READY=1 through the pod, etcd serving on the
// host's network with its data on the host, flanneld leasing a subnet from
// it and writing subnet.env, and both stopping cleanly.
func TestFlyUnitsInVM(t *testing.T) {
	bootVMTools(t)
	requireTool(t, "/usr/bin/etcd")
	dir := t.TempDir()
	addr := startRegistry(t)
	pushImage(t, dir, addr, binaryRoot(t, dir, "/usr/bin/etcd", "/usr/local/bin/etcd"), "coreos/etcd:v3.4",
		"--entrypoint", `["/usr/local/bin/etcd"]`)
	pushImage(t, dir, addr, flannelRoot(t, dir), "flannel/flannel:test",
		"--entrypoint", `["/opt/bin/flanneld"]`, "--env", "PATH=/usr/sbin:/usr/bin:/sbin:/bin")

	img, err := vmImage()
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	o := vm.BootOptions{GuestForwards: map[string]string{vmRegistry: "cmd:/usr/bin/env " + relayEnv + "=" + addr + " " + self}}
	m := bootMachine(t, context.Background(), 5*time.Minute, img, o)
	vmRun(t, m, "systemctl is-system-running --wait")
	mustVMRun(t, m, "orbit fetch oci-archive:/opt/orbit-test/demo.oci.tar")
	// The VM's image configures no network: QEMU's user network, by hand.
	mustVMRun(t, m, `nic=$(ls /sys/class/net | grep -v '^lo$' | head -1) && ip link set "$nic" up && `+
		`ip addr add 10.0.2.15/24 dev "$nic" && ip route add default via 10.0.2.2`)

	u, err := units.Unit("etcd-member.service", "/usr/local/bin")
	if err != nil {
		t.Fatal(err)
	}
	vmWriteFile(t, m, "/etc/systemd/system/etcd-member.service", u)
	vmWriteFile(t, m, "/etc/orbit/etcd-member.env", "ETCD_IMAGE="+vmRegistry+"/coreos/etcd:v3.4\n"+
		"ORBIT_FETCH_FLAGS=--insecure-options=http\n"+
		"ETCD_NAME=node1\nETCD_INITIAL_CLUSTER=node1=http://127.0.0.1:2380\n"+
		"ETCD_LISTEN_PEER_URLS=http://127.0.0.1:2380\nETCD_INITIAL_ADVERTISE_PEER_URLS=http://127.0.0.1:2380\n"+
		"ETCD_LISTEN_CLIENT_URLS=http://127.0.0.1:2379\nETCD_ADVERTISE_CLIENT_URLS=http://127.0.0.1:2379\n")
	// systemctl start returns once the unit is active: for Type=notify,
	// once etcd's READY=1 came through the pod.
	if r := vmRun(t, m, "systemctl daemon-reload && systemctl start etcd-member"); r.Code != 0 {
		t.Fatalf("start etcd-member: %s%s\n%s", r.Stdout, r.Stderr, journal(t, m, "etcd-member"))
	}
	if p := unitProps(t, m, "etcd-member", "ActiveState", "Type"); p["ActiveState"] != "active" {
		t.Fatalf("etcd-member after start: %v\n%s", p, journal(t, m, "etcd-member"))
	}
	// etcd answers on the host's loopback: a key put through its JSON
	// gateway reads back (busybox wget in the demo image).
	wget := func(path, body string) string {
		t.Helper()
		return mustVMRun(t, m, "orbit run --net=host demo --exec=/bin/wget -- -qO- --post-data='"+body+"' http://127.0.0.1:2379"+path)
	}
	wget("/v3/kv/put", `{"key":"b3JiaXQ=","value":"Zmx5"}`) // orbit=fly
	if out := wget("/v3/kv/range", `{"key":"b3JiaXQ="}`); !strings.Contains(out, `"value":"Zmx5"`) {
		t.Fatalf("range after put: %s", out)
	}
	if out := mustVMRun(t, m, "ls /var/lib/etcd"); !strings.Contains(out, "member") {
		t.Errorf("etcd's data is not in the host's /var/lib/etcd: %q", out)
	}
	mustVMRun(t, m, "systemctl stop etcd-member")
	if p := unitProps(t, m, "etcd-member", "ActiveState", "Result", "ExecMainStatus"); p["Result"] != "success" {
		t.Errorf("etcd-member after stop: %v\n%s", p, journal(t, m, "etcd-member"))
	} else {
		t.Logf("etcd-member after stop: %v", p)
	}
	// Started again, it finds its data: the key is still there.
	mustVMRun(t, m, "systemctl start etcd-member")
	if out := wget("/v3/kv/range", `{"key":"b3JiaXQ="}`); !strings.Contains(out, `"value":"Zmx5"`) {
		t.Errorf("range after a restart: %s", out)
	}

	// flanneld.service after it: the network config in etcd, flanneld
	// (orbit-flanneld, configured by FLANNELD_* as flanneld is) leases a
	// subnet, makes its vxlan device and says READY=1 once subnet.env is
	// written for the CNI plugin.
	u, err = units.Unit("flanneld.service", "/usr/local/bin")
	if err != nil {
		t.Fatal(err)
	}
	vmWriteFile(t, m, "/etc/systemd/system/flanneld.service", u)
	vmWriteFile(t, m, "/etc/orbit/flanneld.env", "FLANNEL_IMAGE="+vmRegistry+"/flannel/flannel:test\n"+
		"ORBIT_FETCH_FLAGS=--insecure-options=http\n")
	key := base64.StdEncoding.EncodeToString([]byte("/coreos.com/network/config"))
	val := base64.StdEncoding.EncodeToString([]byte(`{"Network":"10.198.0.0/16","Backend":{"Type":"vxlan"}}`))
	wget("/v3/kv/put", `{"key":"`+key+`","value":"`+val+`"}`)
	if r := vmRun(t, m, "systemctl daemon-reload && systemctl start flanneld"); r.Code != 0 {
		t.Fatalf("start flanneld: %s%s\n%s", r.Stdout, r.Stderr, journal(t, m, "flanneld"))
	}
	if out := mustVMRun(t, m, "cat /run/flannel/subnet.env"); !strings.Contains(out, "FLANNEL_NETWORK=10.198.0.0/16") || !strings.Contains(out, "FLANNEL_SUBNET=10.198.") {
		t.Errorf("subnet.env: %q\n%s", out, journal(t, m, "flanneld"))
	}
	if out := vmRun(t, m, "ip -d link show flannel.1").Stdout; !strings.Contains(out, "vxlan") {
		t.Errorf("no vxlan device flannel.1: %q", out)
	}
	if p := unitProps(t, m, "flanneld", "ActiveState", "MainPID"); p["ActiveState"] != "active" {
		t.Errorf("flanneld: %v", p)
	}
	mustVMRun(t, m, "systemctl stop flanneld etcd-member")
	for _, u := range []string{"flanneld", "etcd-member"} {
		if p := unitProps(t, m, u, "Result", "ExecMainStatus"); p["Result"] != "success" {
			t.Errorf("%s after stop: %v\n%s", u, p, journal(t, m, u))
		}
	}
}
