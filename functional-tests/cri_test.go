//go:build functional

package functional

import (
	"context"
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The CRI test runs cri-tools' conformance suite, critest, against
// orbit-cri. The images critest asks for (registry.k8s.io/...,
// gcr.io/k8s-staging-cri-tools/...) are built here from Debian's
// busybox-static with orbit-mkimage, pushed to a local registry under
// their full names, and orbit-cri maps those registries to it.

// criBridge and criSubnet are this test's CNI network: unique on the host.
const (
	criBridge = "cri-br0"
	criSubnet = "10.213.0.0/24"
	criNet    = "cri-test"
)

// critestSkips are the critest cases that do not apply to orbit-cri, each
// with why (docs/kubelet.md lists them too).
var critestSkips = map[string]string{
	// Images pinned by a digest of an image built elsewhere cannot be
	// rebuilt here byte for byte.
	`digest`: "images pinned by upstream digests cannot be rebuilt offline",
	// This kernel has no AppArmor, nor SELinux: no profile can be loaded.
	`AppArmor|apparmor|SELinux|selinux`: "no LSM profiles",
	`benchmark`:                         "benchmarks are not conformance",
}

// criBusybox is Debian's dynamically linked busybox, which
// scripts/install-deps unpacks: its shell execs commands by their path,
// as the busybox of critest's own images does (Debian's busybox-static
// runs its applets in the shell, so a masked /bin/ls never shows).
const criBusybox = "/var/cache/orbit-deps/busybox/bin/busybox"

// criBusyboxRoot is a busybox root with the users and groups critest's
// images have.
func criBusyboxRoot(t *testing.T, dir string) string {
	t.Helper()
	root := filepath.Join(dir, "busybox")
	for _, d := range []string{"bin", "etc", "tmp", "root", "proc", "sys", "dev", "var/www"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	_ = os.Chmod(filepath.Join(root, "tmp"), 0o1777)
	if _, err := os.Stat(criBusybox); err != nil {
		t.Fatalf("Debian's busybox, unpacked by scripts/install-deps: %v", err)
	}
	// It is linked dynamically: its libraries go along.
	addBinary(t, root, criBusybox, "/bin/busybox")
	out, err := exec.Command(criBusybox, "--list").Output()
	if err != nil {
		t.Fatal(err)
	}
	// Hard links, as busybox images have: critest masks /bin/ls, which
	// through a symlink would mask busybox itself.
	for _, a := range strings.Fields(string(out)) {
		if a != "busybox" {
			_ = os.Link(filepath.Join(root, "bin", "busybox"), filepath.Join(root, "bin", a))
		}
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www-data:/var/www:/bin/false\n" +
			"default-user:x:1000:1000:Linux User,,,:/home/default-user:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
		"etc/group": "root:x:0:\nwww-data:x:33:\nusers:x:100:\ndefault-user:x:1000:\n" +
			"group-defined-in-image:x:50000:default-user\nnogroup:x:65534:\n",
		"var/www/index.html": "<html><body>orbit critest web server</body></html>\n",
		// Debian's busybox has no pgrep or ipcs applets, which critest runs.
		"bin/ipcs": "#!/bin/sh\ncat /proc/sysvipc/shm\n",
		"bin/pgrep": "#!/bin/sh\n[ \"$1\" = -f ] && shift\nps -o pid= -o args= | while read -r pid args; do\n" +
			"  case \"$args\" in *pgrep*) ;; *\"$1\"*) echo \"$pid\" ;; esac\ndone\n",
	}
	for f, c := range files {
		if err := os.WriteFile(filepath.Join(root, f), []byte(c), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// criNoNewPrivsLayer is a layer with critest's nonewprivs program: a
// setuid-root binary that prints its effective UID.
func criNoNewPrivsLayer(t *testing.T, dir string) string {
	t.Helper()
	src := filepath.Join(dir, "nnp-src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	prog := "package main\n\nimport (\n\t\"fmt\"\n\t\"os\"\n)\n\nfunc main() { fmt.Printf(\"Effective uid: %d\\n\", os.Geteuid()) }\n"
	if err := os.WriteFile(filepath.Join(src, "main.go"), []byte(prog), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte("module nnp\n\ngo 1.21\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	layer := filepath.Join(dir, "nnp")
	bin := filepath.Join(layer, "usr", "local", "bin", "nnp")
	c := exec.Command(goTool(), "build", "-o", bin, ".")
	c.Dir = src
	c.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("build nonewprivs: %v\n%s", err, out)
	}
	if err := os.Chmod(bin, 0o755|os.ModeSetuid); err != nil { // Go's FileMode has its own setuid bit
		t.Fatal(err)
	}
	return layer
}

// criNginxLayer is a stand-in for nginx where critest looks at nginx's
// process: /usr/sbin/nginx re-executes itself as nginx's master process
// names itself ("nginx: master process ..."), writes /var/run/nginx.pid and
// serves /var/www on port 80.
func criNginxLayer(t *testing.T, dir string) string {
	t.Helper()
	src := filepath.Join(dir, "nginx-src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	prog := `package main

import (
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
)

const master = "nginx: master process nginx -g daemon off;"

func main() {
	if !strings.HasPrefix(os.Args[0], "nginx: ") {
		err := syscall.Exec("/usr/sbin/nginx", []string{master}, os.Environ())
		panic(err)
	}
	if err := os.WriteFile("/var/run/nginx.pid", []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		panic(err)
	}
	panic(http.ListenAndServe(":80", http.FileServer(http.Dir("/var/www"))))
}
`
	if err := os.WriteFile(filepath.Join(src, "main.go"), []byte(prog), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte("module nginx\n\ngo 1.21\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	layer := filepath.Join(dir, "nginx")
	if err := os.MkdirAll(filepath.Join(layer, "var", "run"), 0o755); err != nil {
		t.Fatal(err)
	}
	c := exec.Command(goTool(), "build", "-o", filepath.Join(layer, "usr", "sbin", "nginx"), ".")
	c.Dir = src
	c.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("build nginx stand-in: %v\n%s", err, out)
	}
	return layer
}

// criImage builds an image of layers and pushes it to the registry at
// addr as name (its full name, registry host included, as a path).
func criImage(t *testing.T, dir, addr, name string, layers []string, args ...string) {
	t.Helper()
	file := filepath.Join(dir, strings.NewReplacer("/", "_", ":", "_").Replace(name)+".tar")
	// A label of the repository's path makes images of different
	// repositories different; tags of one repository, and one repository
	// in two registries, share an image.
	repo := name[strings.Index(name, "/")+1 : strings.LastIndex(name, ":")]
	a := []string{"--name", "img:latest", "--env", "PATH=/bin:/usr/local/bin", "-o", file, "--labels", fmt.Sprintf(`{"repo":%q}`, repo)}
	for _, l := range layers {
		a = append(a, "--layer", l)
	}
	a = append(a, args...)
	if out, err := exec.Command(filepath.Join(build, "bin", "orbit-mkimage"), a...).CombinedOutput(); err != nil {
		t.Fatalf("orbit-mkimage %s: %v\n%s", name, err, out)
	}
	skopeoCopy(t, "oci-archive:"+file, "docker://"+addr+"/"+name)
}

// criImages fills the registry with what critest pulls.
func criImages(t *testing.T, dir, addr string) {
	t.Helper()
	bb := criBusyboxRoot(t, dir)
	sh := []string{"--cmd", `["/bin/sh"]`}
	criImage(t, dir, addr, "registry.k8s.io/e2e-test-images/busybox:1.29-2", []string{bb}, sh...)
	pause := []string{"--cmd", `["/bin/sleep","2147483647"]`}
	criImage(t, dir, addr, "registry.k8s.io/pause:3.10", []string{bb}, pause...)
	criImage(t, dir, addr, "registry.k8s.io/pause:3.9", []string{bb}, pause...)
	criImage(t, dir, addr, "k8s.gcr.io/pause:3.9", []string{bb}, pause...)
	// critest looks for "httpd" in its log.
	criImage(t, dir, addr, "registry.k8s.io/e2e-test-images/httpd:2.4.39-4", []string{bb}, "--cmd", `["/bin/sh","-c","echo httpd: serving /var/www on port 80; exec httpd -f -p 80 -h /var/www"]`)
	criImage(t, dir, addr, "registry.k8s.io/e2e-test-images/nonewprivs:1.3", []string{bb, criNoNewPrivsLayer(t, dir)}, "--entrypoint", `["/usr/local/bin/nnp"]`)
	criImage(t, dir, addr, "registry.k8s.io/e2e-test-images/nginx:1.14-2", []string{bb, criNginxLayer(t, dir)}, "--cmd", `["/usr/sbin/nginx"]`)
	const stg = "gcr.io/k8s-staging-cri-tools/"
	criImage(t, dir, addr, stg+"hostnet-nginx-amd64:latest", []string{bb}, "--cmd", `["/bin/httpd","-f","-p","12003","-h","/var/www"]`)
	for _, n := range []string{"test-image-latest:latest", "test-image-tag:test", "test-image-tag:all",
		"test-image-tags:1", "test-image-tags:2", "test-image-tags:3"} {
		criImage(t, dir, addr, stg+n, []string{bb}, sh...)
	}
	// Different images: each a layer of its own on busybox.
	for i := 1; i <= 3; i++ {
		extra := filepath.Join(dir, fmt.Sprintf("extra%d", i))
		if err := os.MkdirAll(extra, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(extra, fmt.Sprintf("test-%d", i)), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		criImage(t, dir, addr, fmt.Sprintf("%stest-image-%d:latest", stg, i), []string{bb, extra}, sh...)
	}
	for name, user := range map[string]string{
		"test-image-user-uid":            "1002",
		"test-image-user-username":       "www-data",
		"test-image-user-uid-group":      "1003:users",
		"test-image-user-username-group": "www-data:users",
		"test-image-predefined-group":    "1000",
	} {
		criImage(t, dir, addr, stg+name+":latest", []string{bb}, append(sh, "--user", user)...)
	}
}

// criNetwork writes the test's CNI network configuration and returns its
// directory; the bridge it makes is removed when the test ends.
func criNetwork(t *testing.T, dir string) string {
	t.Helper()
	netDir := filepath.Join(dir, "net.d")
	if err := os.MkdirAll(netDir, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":%q,"plugins":[
 {"type":"bridge","bridge":%q,"isGateway":true,"isDefaultGateway":true,"hairpinMode":true,
  "ipam":{"type":"host-local","ranges":[[{"subnet":%q}]],"dataDir":%q}},
 {"type":"portmap","backend":"nftables","capabilities":{"portMappings":true}}]}`,
		criNet, criBridge, criSubnet, filepath.Join(dir, "ipam"))
	if err := os.WriteFile(filepath.Join(netDir, criNet+".conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", criBridge).Run() })
	return netDir
}

// startCRI runs orbit-cri for the env and returns its socket.
func (e *env) startCRI(regAddr, netDir string) string {
	e.t.Helper()
	sock := filepath.Join(e.root, "cri.sock")
	_ = os.Remove(sock)
	log, err := os.OpenFile(filepath.Join(e.root, "orbit-cri.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		e.t.Fatal(err)
	}
	network := "--cni-network=" + criNet
	if netDir == "" {
		network = "--cni-network=none"
	}
	c := exec.Command(filepath.Join(build, "bin", "orbit-cri"),
		"--dir="+e.data, "--local-config="+e.conf, "--system-config="+filepath.Join(e.root, "none"),
		"--listen="+sock, network, "--net-config-dir="+netDir,
		"--net-plugin-dir="+filepath.Join(build, "cni"),
		"--registry-mirror=registry.k8s.io="+regAddr+"/registry.k8s.io",
		"--registry-mirror=gcr.io="+regAddr+"/gcr.io",
		"--registry-mirror=k8s.gcr.io="+regAddr+"/k8s.gcr.io",
		"--insecure-http")
	c.Stdout, c.Stderr = log, log
	if err := c.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.started = append(e.started, c)
	e.t.Cleanup(func() {
		// Pods outlive orbit-cri: what critest left running is stopped
		// here, and the env's cleanup collects it after.
		if c.ProcessState == nil {
			_ = c.Process.Signal(os.Interrupt)
			_, _ = c.Process.Wait()
		}
		for _, u := range e.podUUIDs() {
			_ = e.cmd("stop", "--force", u).Run()
			_ = e.cmd("status", "--wait=30s", u).Run()
		}
		log.Close()
		if e.t.Failed() {
			b, _ := os.ReadFile(log.Name())
			e.t.Logf("orbit-cri log:\n%s", lastN(string(b), 4000))
		}
	})
	waitFor(e.t, "orbit-cri's socket", 30*time.Second, func() bool {
		_, err := os.Stat(sock)
		return err == nil
	})
	return sock
}

// criClient connects to orbit-cri's socket.
func criClient(t *testing.T, sock string) (runtimeapi.RuntimeServiceClient, runtimeapi.ImageServiceClient) {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return runtimeapi.NewRuntimeServiceClient(conn), runtimeapi.NewImageServiceClient(conn)
}

// TestCRIBadInputAndRestart checks that bad requests get the right gRPC
// codes and leave no pod behind, and that a restarted orbit-cri finds its
// sandboxes and containers still running.
func TestCRIBadInputAndRestart(t *testing.T) {
	e := newEnv(t)
	reg := startRegistry(t)
	imgDir := t.TempDir()
	criImage(t, imgDir, reg, "registry.k8s.io/e2e-test-images/busybox:1.29-2", []string{criBusyboxRoot(t, imgDir)}, "--cmd", `["/bin/sh"]`)
	sock := e.startCRI(reg, "")
	rt, im := criClient(t, sock)
	ctx := context.Background()
	md := &runtimeapi.PodSandboxMetadata{Name: "bad", Uid: "bad-1", Namespace: "default"}
	noPods := func(what string) {
		t.Helper()
		if u := e.podUUIDs(); len(u) != 0 {
			t.Errorf("%s left pods %v", what, u)
		}
	}
	wantCode := func(what string, err error, code codes.Code, words ...string) {
		t.Helper()
		if status.Code(err) != code {
			t.Errorf("%s: %v, want code %v", what, err, code)
			return
		}
		for _, w := range words {
			if !strings.Contains(status.Convert(err).Message(), w) {
				t.Errorf("%s: message %q does not name %q", what, status.Convert(err).Message(), w)
			}
		}
	}
	_, err := rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: &runtimeapi.PodSandboxConfig{Metadata: md}, RuntimeHandler: "runsc"})
	wantCode("unknown runtime handler", err, codes.InvalidArgument, `"runsc"`)
	noPods("an unknown handler")
	_, err = rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: &runtimeapi.PodSandboxConfig{Metadata: md,
		Linux: &runtimeapi.LinuxPodSandboxConfig{Resources: &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 1024}}}})
	wantCode("a 1 KiB memory limit", err, codes.InvalidArgument, "memory limit 1024")
	noPods("impossible resources")
	_, err = rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: &runtimeapi.PodSandboxConfig{Metadata: md,
		Linux: &runtimeapi.LinuxPodSandboxConfig{Sysctls: map[string]string{"vm.swappiness": "1"}}}})
	wantCode("a node sysctl", err, codes.InvalidArgument, "vm.swappiness")
	noPods("a node sysctl")
	_, err = im.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: "registry.k8s.io/no-such-image:1"}})
	wantCode("pulling a missing image", err, codes.NotFound, "registry.k8s.io/no-such-image:1")

	pod, err := rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: &runtimeapi.PodSandboxConfig{Metadata: md, LogDirectory: filepath.Join(e.root, "logs")}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "c"},
		Image:   &runtimeapi.ImageSpec{Image: "registry.k8s.io/e2e-test-images/busybox:1.29-2"},
		Command: []string{"/bin/sh", "-c", "echo started; sleep 1000"}, LogPath: "c.log"}
	_, err = rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: pod.PodSandboxId, Config: cfg, SandboxConfig: &runtimeapi.PodSandboxConfig{Metadata: md}})
	wantCode("a container of an image not pulled", err, codes.NotFound, "registry.k8s.io/e2e-test-images/busybox:1.29-2")
	if l, err := rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{}); err != nil || len(l.Containers) != 0 {
		t.Errorf("after a failed create: containers %v, %v", l, err)
	}
	if _, err := im.PullImage(ctx, &runtimeapi.PullImageRequest{Image: cfg.Image}); err != nil {
		t.Fatal(err)
	}
	ctr, err := rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: pod.PodSandboxId, Config: cfg, SandboxConfig: &runtimeapi.PodSandboxConfig{Metadata: md}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: ctr.ContainerId}); err != nil {
		t.Fatal(err)
	}

	// A new orbit-cri finds the same sandbox and container, still running.
	first := e.started[len(e.started)-1]
	_ = first.Process.Signal(os.Interrupt)
	_, _ = first.Process.Wait()
	sock = e.startCRI(reg, "")
	rt, _ = criClient(t, sock)
	ps, err := rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: pod.PodSandboxId})
	if err != nil || ps.Status.State != runtimeapi.PodSandboxState_SANDBOX_READY {
		t.Fatalf("sandbox after the restart: %v, %v", ps, err)
	}
	cs, err := rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: ctr.ContainerId})
	if err != nil || cs.Status.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("container after the restart: %v, %v", cs, err)
	}
	waitFor(t, "the container's log line", 10*time.Second, func() bool {
		b, _ := os.ReadFile(filepath.Join(e.root, "logs", "c.log"))
		return strings.Contains(string(b), " stdout F started\n")
	})
	out, err := rt.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: ctr.ContainerId, Cmd: []string{"/bin/sh", "-c", "echo hi; exit 3"}, Timeout: 10})
	if err != nil || string(out.Stdout) != "hi\n" || out.ExitCode != 3 {
		t.Fatalf("exec: %v, %v", out, err)
	}
	if _, err := rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: pod.PodSandboxId}); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: pod.PodSandboxId}); err != nil {
		t.Fatal(err)
	}
	noPods("a removed sandbox")
}

func lastN(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// junitReport is the part of critest's (ginkgo's) JUnit report the test
// reads.
type junitReport struct {
	Suites []struct {
		Cases []struct {
			Name   string `xml:"name,attr"`
			Status string `xml:"status,attr"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

func TestCRIConformance(t *testing.T) {
	critest := filepath.Join(build, "tools", "critest")
	if _, err := os.Stat(critest); err != nil {
		t.Fatalf("critest is not built (make test-tools): %v", err)
	}
	e := newEnv(t)
	e.fetchDemo()
	reg := startRegistry(t)
	imgDir := t.TempDir()
	criImages(t, imgDir, reg)
	sock := e.startCRI(reg, criNetwork(t, e.root))
	var skips []string
	for re := range critestSkips {
		skips = append(skips, re)
	}
	report := filepath.Join(e.root, "junit.xml")
	args := []string{"--runtime-endpoint=unix://" + sock, "--image-endpoint=unix://" + sock,
		"--ginkgo.junit-report=" + report, "--ginkgo.no-color", "--ginkgo.skip=" + strings.Join(skips, "|")}
	if f := os.Getenv("ORBIT_CRITEST_FOCUS"); f != "" {
		args = append(args, "--ginkgo.focus="+f)
	}
	c := exec.Command(critest, args...)
	c.Dir = e.root
	logf, err := os.Create(filepath.Join(e.root, "critest.log"))
	if err != nil {
		t.Fatal(err)
	}
	c.Stdout, c.Stderr = logf, logf
	runErr := c.Run()
	logf.Close()
	out, _ := os.ReadFile(logf.Name())
	if dst := os.Getenv("ORBIT_CRITEST_LOG"); dst != "" {
		_ = os.WriteFile(dst, out, 0o644)
	}
	var passed, failed, skipped int
	var failures []string
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatalf("critest wrote no report: %v\n%s", err, lastN(string(out), 6000))
	}
	var rep junitReport
	if err := xml.Unmarshal(b, &rep); err != nil {
		t.Fatalf("critest report: %v", err)
	}
	for _, s := range rep.Suites {
		for _, tc := range s.Cases {
			if !strings.HasPrefix(tc.Name, "[It]") {
				continue // suite set-up and tear-down
			}
			switch tc.Status {
			case "passed":
				passed++
			case "skipped":
				skipped++
			default:
				failed++
				failures = append(failures, tc.Name)
			}
		}
	}
	t.Logf("critest: %d passed, %d failed, %d skipped", passed, failed, skipped)
	for _, f := range failures {
		t.Logf("FAILED: %s", f)
	}
	if runErr != nil || failed > 0 || passed == 0 {
		t.Errorf("critest: %v; %d failed, %d passed\n%s", runErr, failed, passed, lastN(string(out), 6000))
	}
}
