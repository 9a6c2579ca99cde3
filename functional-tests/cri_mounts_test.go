//go:build functional

package functional

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// A container's mounts are the host as it is when the container is made:
// a file mounted on a file (as the kubelet mounts /etc/hosts), a tmpfs the
// host mounted under a directory after the sandbox started, and, for a
// bidirectional mount, removing the container leaves the host's own
// mounts under the shared source alone.
func TestCRIContainerMountsFromTheHost(t *testing.T) {
	e := newEnv(t)
	reg := startRegistry(t)
	imgDir := t.TempDir()
	const img = "registry.k8s.io/e2e-test-images/busybox:1.29-2"
	criImage(t, imgDir, reg, img, []string{criBusyboxRoot(t, imgDir)}, "--cmd", `["/bin/sh"]`)
	sock := e.startCRI(reg, "")
	rt, im := criClient(t, sock)
	ctx := context.Background()
	if _, err := im.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: img}}); err != nil {
		t.Fatal(err)
	}
	md := &runtimeapi.PodSandboxMetadata{Name: "mounts", Uid: "mounts-1", Namespace: "default"}
	sbCfg := &runtimeapi.PodSandboxConfig{Metadata: md}
	pod, err := rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: sbCfg})
	if err != nil {
		t.Fatal(err)
	}

	host := t.TempDir()
	file := filepath.Join(host, "hosts")
	dir := filepath.Join(host, "dir")
	late := filepath.Join(dir, "late")
	shared := filepath.Join(host, "shared")
	keep := filepath.Join(shared, "keep")
	for _, d := range []string{late, keep} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(file, []byte("127.0.0.1 from-the-host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mount := func(src, dst, typ string, flags uintptr) {
		t.Helper()
		if err := unix.Mount(src, dst, typ, flags, ""); err != nil {
			t.Fatalf("mount %s on %s: %v", src, dst, err)
		}
	}
	// After the sandbox started: a tmpfs under dir, and shared made a
	// shared mount with a tmpfs of the host's own under it.
	mount("tmpfs", late, "tmpfs", 0)
	t.Cleanup(func() { _ = unix.Unmount(late, unix.MNT_DETACH) })
	if err := os.WriteFile(filepath.Join(late, "f"), []byte("mounted after the sandbox\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mount(shared, shared, "", unix.MS_BIND|unix.MS_REC)
	t.Cleanup(func() { _ = unix.Unmount(shared, unix.MNT_DETACH) })
	mount("", shared, "", unix.MS_SHARED|unix.MS_REC)
	mount("tmpfs", keep, "tmpfs", 0)
	t.Cleanup(func() { _ = unix.Unmount(keep, unix.MNT_DETACH) })
	if err := os.WriteFile(filepath.Join(keep, "f"), []byte("the host's\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	cfg := &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "c"},
		Image:   &runtimeapi.ImageSpec{Image: img},
		Command: []string{"/bin/sleep", "1000"},
		Linux:   &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{Privileged: true}},
		Mounts: []*runtimeapi.Mount{
			{HostPath: file, ContainerPath: "/etc/hosts", Readonly: true},
			{HostPath: dir, ContainerPath: "/dir"},
			{HostPath: shared, ContainerPath: "/shared", Propagation: runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL},
		}}
	ctr, err := rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: pod.PodSandboxId, Config: cfg, SandboxConfig: sbCfg})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: ctr.ContainerId}); err != nil {
		t.Fatal(err)
	}
	exec := func(cmd string) string {
		t.Helper()
		out, err := rt.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: ctr.ContainerId, Cmd: []string{"/bin/sh", "-c", cmd}, Timeout: 10})
		if err != nil {
			t.Fatal(err)
		}
		return string(out.Stdout) + string(out.Stderr)
	}
	if out := exec("cat /etc/hosts"); out != "127.0.0.1 from-the-host\n" {
		t.Errorf("/etc/hosts from a host file: %q", out)
	}
	if out := exec("cat /dir/late/f"); out != "mounted after the sandbox\n" {
		t.Errorf("a tmpfs the host mounted after the sandbox started: %q", out)
	}
	if out := exec("cat /shared/keep/f"); out != "the host's\n" {
		t.Errorf("the shared source's submount: %q", out)
	}

	if _, err := rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: ctr.ContainerId}); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: ctr.ContainerId}); err != nil {
		t.Fatal(err)
	}
	// The host's mount under the shared source is still there.
	if b, err := os.ReadFile(filepath.Join(keep, "f")); err != nil || string(b) != "the host's\n" {
		mi, _ := os.ReadFile("/proc/self/mountinfo")
		var ours []string
		for _, l := range strings.Split(string(mi), "\n") {
			if strings.Contains(l, host) {
				ours = append(ours, l)
			}
		}
		t.Errorf("after removing the container, the host's tmpfs under the shared source: %q, %v\n%s", b, err, strings.Join(ours, "\n"))
	}
	if _, err := rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: pod.PodSandboxId}); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: pod.PodSandboxId}); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(keep, "f")); err != nil || string(b) != "the host's\n" {
		t.Errorf("after removing the sandbox, the host's tmpfs under the shared source: %q, %v", b, err)
	}
}
