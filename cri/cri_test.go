package cri

import (
	"strings"
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

func TestAppArmorProfilesByNameAreRefused(t *testing.T) {
	local := &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: "my-profile"}
	for name, c := range map[string]struct {
		p          *runtimeapi.SecurityProfile
		deprecated string
		code       codes.Code
	}{
		"none":                   {nil, "", codes.OK},
		"runtime default":        {&runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}, "", codes.OK},
		"unconfined":             {&runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}, "unconfined", codes.OK},
		"localhost":              {local, "", codes.Unimplemented},
		"deprecated localhost":   {nil, "localhost/my-profile", codes.Unimplemented},
		"deprecated runtime/def": {nil, "runtime/default", codes.OK},
	} {
		err := checkAppArmor("container config", c.p, c.deprecated)
		if status.Code(err) != c.code || (err != nil && !strings.Contains(err.Error(), `"my-profile"`)) {
			t.Errorf("%s: %v, want %v naming the profile", name, err, c.code)
		}
	}
	md := &runtimeapi.PodSandboxMetadata{Name: "p", Uid: "u", Namespace: "n"}
	sb := &runtimeapi.PodSandboxConfig{Metadata: md, Linux: &runtimeapi.LinuxPodSandboxConfig{
		SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{Apparmor: local}}}
	if err := checkSandboxConfig(sb); status.Code(err) != codes.Unimplemented {
		t.Errorf("a sandbox with a named profile: %v", err)
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

func TestContainerNamespaceModes(t *testing.T) {
	sandbox := func(pid, ipc runtimeapi.NamespaceMode) *runtimeapi.PodSandboxConfig {
		return &runtimeapi.PodSandboxConfig{Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Pid: pid, Ipc: ipc}}}}
	}
	const pod, node, ctr, target = runtimeapi.NamespaceMode_POD, runtimeapi.NamespaceMode_NODE, runtimeapi.NamespaceMode_CONTAINER, runtimeapi.NamespaceMode_TARGET
	for _, c := range []struct {
		sbPID, sbIPC, pid, ipc runtimeapi.NamespaceMode
		own                    bool
		code                   codes.Code
	}{
		{pod, pod, pod, pod, false, codes.OK},
		{node, node, node, node, false, codes.OK},
		{ctr, pod, ctr, pod, true, codes.OK},
		{pod, pod, ctr, pod, true, codes.OK},
		{node, pod, ctr, pod, false, codes.InvalidArgument},
		{pod, pod, node, pod, false, codes.InvalidArgument},
		{node, pod, pod, pod, false, codes.InvalidArgument},
		{pod, node, pod, pod, false, codes.InvalidArgument},
		{pod, pod, target, pod, false, codes.Unimplemented},
	} {
		own, err := pidNamespace(sandbox(c.sbPID, c.sbIPC), &runtimeapi.NamespaceOption{Pid: c.pid, Ipc: c.ipc})
		if status.Code(err) != c.code || own != c.own {
			t.Errorf("sandbox pid %v ipc %v, container pid %v ipc %v: own %v, %v; want %v, %v", c.sbPID, c.sbIPC, c.pid, c.ipc, own, err, c.own, c.code)
		}
	}
}
