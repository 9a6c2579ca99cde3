package cri

import (
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestMirrorSource(t *testing.T) {
	m := Mirrors{"registry.k8s.io": "127.0.0.1:5000/registry.k8s.io", "docker.io": "127.0.0.1:5000/hub"}
	for ref, want := range map[string]string{
		"registry.k8s.io/pause:3.10": "docker://127.0.0.1:5000/registry.k8s.io/pause:3.10",
		"busybox":                    "docker://127.0.0.1:5000/hub/library/busybox",
		"someone/app:1":              "docker://127.0.0.1:5000/hub/someone/app:1",
		"quay.io/x/y@sha256:00":      "docker://quay.io/x/y@sha256:00",
		"localhost/x:1":              "docker://localhost/x:1",
	} {
		if got := m.source(ref); got != want {
			t.Errorf("source(%q) = %q, want %q", ref, got, want)
		}
	}
	if _, _, err := ParseMirror("registry.k8s.io"); err == nil {
		t.Error("ParseMirror without = succeeded")
	}
}

func TestContainerIDRoundTrip(t *testing.T) {
	uuid, app := "df976ac0-1a4d-4c9d-a9f1-5b9e66b7116b", "d30cecdbd8bb9a144161f800d7f8b273"
	id := containerID(uuid, app)
	u, a, ok := splitContainerID(id)
	if !ok || u != uuid || a != app {
		t.Fatalf("splitContainerID(%q) = %q, %q, %v", id, u, a, ok)
	}
	if _, _, ok := splitContainerID(id[:20]); ok {
		t.Error("a short ID split")
	}
}

func TestBadSandboxConfigs(t *testing.T) {
	md := &runtimeapi.PodSandboxMetadata{Name: "p", Uid: "u", Namespace: "n"}
	for name, cfg := range map[string]*runtimeapi.PodSandboxConfig{
		"no metadata":   {},
		"tiny memory":   {Metadata: md, Linux: &runtimeapi.LinuxPodSandboxConfig{Resources: &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 4096}}},
		"bad period":    {Metadata: md, Linux: &runtimeapi.LinuxPodSandboxConfig{Resources: &runtimeapi.LinuxContainerResources{CpuPeriod: 10}}},
		"negative cpus": {Metadata: md, Linux: &runtimeapi.LinuxPodSandboxConfig{Resources: &runtimeapi.LinuxContainerResources{CpuShares: -1}}},
		"bad port":      {Metadata: md, PortMappings: []*runtimeapi.PortMapping{{ContainerPort: 70000}}},
	} {
		if err := checkSandboxConfig(cfg); status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: %v, want InvalidArgument", name, err)
		}
	}
	if err := checkSandboxConfig(&runtimeapi.PodSandboxConfig{Metadata: md}); err != nil {
		t.Errorf("a plain config: %v", err)
	}
	if err := checkHandler("runsc"); status.Code(err) != codes.InvalidArgument {
		t.Errorf("unknown handler: %v", err)
	}
}

func TestNamespacedSysctl(t *testing.T) {
	for k, want := range map[string]bool{"net.ipv4.ip_forward": true, "kernel.shm_rmid_forced": true,
		"fs.mqueue.msg_max": true, "kernel.panic": false, "vm.swappiness": false, "net/ipv4/ping_group_range": true} {
		if got := namespacedSysctl(k); got != want {
			t.Errorf("namespacedSysctl(%q) = %v", k, got)
		}
	}
}
