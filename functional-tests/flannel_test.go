//go:build functional

package functional

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFlannelNetworkGivesAddressFromTheHostsLease runs a pod on a flannel
// network, with subnet.env written as flanneld would: the pod's address
// comes from the host's lease, its route to the whole overlay goes through
// the lease's gateway, and gc releases it.
func TestFlannelNetworkGivesAddressFromTheHostsLease(t *testing.T) {
	e := newNetEnv(t)
	subnetEnv := filepath.Join(e.root, "subnet.env")
	env := "FLANNEL_NETWORK=10.198.0.0/16\nFLANNEL_SUBNET=10.198.5.1/24\nFLANNEL_MTU=1400\nFLANNEL_IPMASQ=true\n"
	if err := os.WriteFile(subnetEnv, []byte(env), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`{"cniVersion": "1.0.0", "name": "ftflannel", "plugins": [
  {"type": "flannel", "subnetFile": %q, "dataDir": %q,
   "delegate": {"bridge": "orbft1"}, "ipam": {"dataDir": %q}}]}`,
		subnetEnv, filepath.Join(e.root, "flannel"), e.ipamDir)
	if err := os.WriteFile(filepath.Join(e.conf, "net.d", "20-flannel.conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	uuid, wait := e.startPod("--net=ftflannel", pluginDir(), "demo", "--exec=/bin/sh", "--", "-c", "while true; do sleep 0.1; done")
	if ip := e.podIP(uuid); !strings.HasPrefix(ip, "10.198.5.") {
		t.Fatalf("pod address %s, want one of 10.198.5.0/24", ip)
	}
	out := e.mustOrbit("enter", uuid, "/bin/sh", "-c", "ip route; cat /sys/class/net/eth0/mtu")
	if !strings.Contains(out, "10.198.0.0/16 via 10.198.5.1") || !strings.Contains(out, "1400") {
		t.Errorf("route to the flannel network or MTU missing:\n%s", out)
	}
	if d, _ := os.ReadDir(filepath.Join(e.root, "flannel")); len(d) != 1 {
		t.Errorf("flannel saved %d delegate configurations, want 1", len(d))
	}
	e.mustOrbit("stop", uuid)
	wait()
	if d, _ := os.ReadDir(filepath.Join(e.root, "flannel")); len(d) != 0 {
		t.Errorf("flannel kept %d delegate configurations after the pod", len(d))
	}
}
