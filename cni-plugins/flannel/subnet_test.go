package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

func TestDelegateGetsTheLeaseAndARouteToTheFlannelNetwork(t *testing.T) {
	f := filepath.Join(t.TempDir(), "subnet.env")
	env := "FLANNEL_NETWORK=10.5.0.0/16\nFLANNEL_SUBNET=10.5.7.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n"
	if err := os.WriteFile(f, []byte(env), 0o644); err != nil {
		t.Fatal(err)
	}
	se, err := readSubnetEnv(f)
	if err != nil {
		t.Fatal(err)
	}
	raw := []byte(`{"cniVersion":"1.0.0","name":"fl","type":"flannel","delegate":{"bridge":"cni9"},"ipam":{"dataDir":"/x"},"runtimeConfig":{"portMappings":[]}}`)
	n, err := loadConf(raw)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := delegateConf(n, se, raw)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(dc)
	want := `{"bridge":"cni9","cniVersion":"1.0.0","ipMasq":false,"ipam":{"dataDir":"/x","ranges":[[{"gateway":"10.5.7.1","subnet":"10.5.7.0/24"}]],"routes":[{"dst":"10.5.0.0/16"}],"type":"host-local"},"isGateway":true,"mtu":1450,"name":"fl","runtimeConfig":{"portMappings":[]},"type":"bridge"}`
	if string(b) != want {
		t.Errorf("delegate configuration\n got %s\nwant %s", b, want)
	}
}

func TestSubnetFileWithoutLeaseIsRefused(t *testing.T) {
	f := filepath.Join(t.TempDir(), "subnet.env")
	if err := os.WriteFile(f, []byte("FLANNEL_NETWORK=10.5.0.0/16\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readSubnetEnv(f); err == nil {
		t.Fatal("no error without FLANNEL_SUBNET")
	}
	if _, err := readSubnetEnv(filepath.Join(t.TempDir(), "none")); err == nil {
		t.Fatal("no error without a subnet file")
	}
}
