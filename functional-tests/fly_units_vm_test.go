//go:build functional

package functional

import (
	"context"
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
	copyFile := func(from, to string, mode os.FileMode) {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(root, filepath.Dir(to)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, to), b, mode); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(src, dst, 0o755)
	out, err := exec.Command("ldd", src).Output()
	if err != nil {
		t.Fatalf("ldd %s: %v", src, err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		var lib string
		switch {
		case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
			lib = f[2]
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			lib = f[0]
		}
		if lib != "" {
			copyFile(lib, lib, 0o755)
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "tmp"), 0o1777); err != nil {
		t.Fatal(err)
	}
	return root
}

// TestFlyUnitsInVM runs the shipped etcd-member.service as it is, under
// systemd: its image (Debian's etcd, here) fetched from a registry, etcd
// in a fly pod reporting READY=1 through the pod, serving on the host's
// network with its data on the host, and stopping cleanly.
func TestFlyUnitsInVM(t *testing.T) {
	bootVMTools(t)
	requireTool(t, "/usr/bin/etcd")
	dir := t.TempDir()
	addr := startRegistry(t)
	archive := filepath.Join(dir, "etcd.oci.tar")
	root := binaryRoot(t, dir, "/usr/bin/etcd", "/usr/local/bin/etcd")
	if out, err := exec.Command(filepath.Join(build, "bin", "orbit-mkimage"), "--layer", root, "--name", "etcd:test",
		"--entrypoint", `["/usr/local/bin/etcd"]`, "-o", archive).CombinedOutput(); err != nil {
		t.Fatalf("orbit-mkimage: %v\n%s", err, out)
	}
	skopeoCopy(t, "oci-archive:"+archive, "docker://"+addr+"/coreos/etcd:v3.4")

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
	mustVMRun(t, m, "systemctl stop etcd-member")
}
