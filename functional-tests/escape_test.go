//go:build functional

package functional

import (
	"crypto/sha256"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// buildProbeImage builds escapeprobe statically and packs it as an image.
func (e *env) buildProbeImage() {
	e.t.Helper()
	root := filepath.Join(e.root, "probe-root")
	os.MkdirAll(filepath.Join(root, "tmp"), 0o1777)
	c := exec.Command("go", "build", "-o", filepath.Join(root, "probe"), "./escapeprobe")
	c.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := c.CombinedOutput(); err != nil {
		e.t.Fatalf("build escapeprobe: %v\n%s", err, out)
	}
	archive := filepath.Join(e.root, "probe.tar")
	if out, err := exec.Command(filepath.Join(build, "bin", "orbit-mkimage"), "--layer", root, "--name", "probe:latest",
		"--entrypoint", `["/probe"]`, "-o", archive).CombinedOutput(); err != nil {
		e.t.Fatalf("orbit-mkimage: %v\n%s", err, out)
	}
	e.mustOrbit("fetch", "oci-archive:"+archive)
}

func fileHash(t *testing.T, p string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// Every way out the probe tries is refused: sysrq and /sys writes,
// mounting, loading modules, ptrace, keyctl, raw sockets, user namespaces,
// setns, the host's environment, the runtime's binaries, leaked
// descriptors and working directory, /dev/mem and device nodes.
func TestEscapeAttemptsFromAPodFail(t *testing.T) {
	e := newEnv(t)
	e.buildProbeImage()
	podInit := filepath.Join(build, "libexec", "orbit-pod-init")
	before := fileHash(t, podInit)
	c := e.cmd("run", "probe")
	c.Env = append(c.Env, "PROBE_SENTINEL=orbit-host-secret-4242")
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("probe: %v\n%s", err, out)
	}
	want := []string{"sysrq", "sys", "mount", "module", "ptrace", "keyctl", "rawsocket", "userns", "setns",
		"hostenv", "procexe", "leakedfd", "cwd", "devmem", "mknod"}
	lines := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		name, rest, _ := strings.Cut(l, " ")
		lines[name] = rest
	}
	for _, w := range want {
		r, ok := lines[w]
		switch {
		case !ok:
			t.Errorf("%s: no result in the probe's output", w)
		case w == "sysrq" && strings.Contains(r, "no such file"):
			if _, err := os.Stat("/proc/sysrq-trigger"); err == nil {
				t.Errorf("sysrq: the host has /proc/sysrq-trigger, the pod does not see it: %s", r)
			}
		case !strings.HasPrefix(r, "ok"):
			t.Errorf("%s: %s", w, r)
		}
	}
	if fileHash(t, podInit) != before {
		t.Fatal("the pod init binary on the host changed")
	}
	if t.Failed() {
		t.Logf("probe output:\n%s", out)
	}
}
