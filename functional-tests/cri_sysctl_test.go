//go:build functional

package functional

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// A sandbox's sysctls are set once its network is up: one of its CNI
// interface (which the bridge plugin sets to 1 itself) takes the pod's
// value, in a pod of the node's user namespace and in one of its own.
func TestCRISandboxSysctlsOnItsNetwork(t *testing.T) {
	e := newEnv(t)
	reg := startRegistry(t)
	sock := e.startCRI(reg, criNetwork(t, e.root))
	rt, _ := criClient(t, sock)
	ctx := context.Background()
	ids := []*runtimeapi.IDMapping{{ContainerId: 0, HostId: 320000, Length: 65536}}
	for name, userns := range map[string]*runtimeapi.UserNamespace{
		"node": nil,
		"pod":  {Mode: runtimeapi.NamespaceMode_POD, Uids: ids, Gids: ids},
	} {
		md := &runtimeapi.PodSandboxMetadata{Name: "sysctl-" + name, Uid: "sysctl-" + name, Namespace: "default"}
		pod, err := rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: &runtimeapi.PodSandboxConfig{Metadata: md,
			Linux: &runtimeapi.LinuxPodSandboxConfig{
				Sysctls:         map[string]string{"net/ipv4/conf/eth0/arp_notify": "0", "kernel.shmmni": "1000"},
				SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: &runtimeapi.NamespaceOption{UsernsOptions: userns}},
			}}})
		if err != nil {
			t.Fatalf("%s user namespace: %v", name, err)
		}
		netns := e.podFile(pod.PodSandboxId, "netns")
		out, err := exec.Command("nsenter", "--net="+netns, "cat", "/proc/sys/net/ipv4/conf/eth0/arp_notify").CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "0" {
			t.Errorf("%s user namespace: eth0's arp_notify is %q (%v), want the pod's 0", name, out, err)
		}
		b, err := os.ReadFile(e.podFile(pod.PodSandboxId, "stage1", "pid"))
		if err != nil {
			t.Fatal(err)
		}
		pid := strings.TrimSpace(string(b))
		out, err = exec.Command("nsenter", "--ipc=/proc/"+pid+"/ns/ipc", "cat", "/proc/sys/kernel/shmmni").CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "1000" {
			t.Errorf("%s user namespace: kernel.shmmni is %q (%v), want the pod's 1000", name, out, err)
		}
		if _, err := rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: pod.PodSandboxId}); err != nil {
			t.Fatal(err)
		}
		if _, err := rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: pod.PodSandboxId}); err != nil {
			t.Fatal(err)
		}
	}
	if ms := mountsUnder(filepath.Join(e.data, "pods")); len(ms) != 0 {
		t.Errorf("mounts left: %v", ms)
	}
}
