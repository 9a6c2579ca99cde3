//go:build functional

// Package functional runs the built orbit binaries as root against the real
// kernel: namespaces, cgroups, overlay mounts. Each test gets a data
// directory of its own and leaves nothing behind, pass or fail.
//
// Run with `make functional` (which builds first and sets ORBIT_BUILD), or
// `go test -tags functional ./functional-tests/` from a tree built by make.
package functional

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var build string // directory with bin/, libexec/ and demo.oci.tar

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "functional tests run as root: they make namespaces, cgroups and mounts")
		os.Exit(1)
	}
	build = os.Getenv("ORBIT_BUILD")
	if build == "" {
		build = filepath.Join("..", "build")
	}
	build, _ = filepath.Abs(build)
	for _, f := range []string{"bin/orbit", "libexec/orbit-stage1", "libexec/orbit-pod-init", "bin/orbit-mkimage", "demo.oci.tar"} {
		if _, err := os.Stat(filepath.Join(build, f)); err != nil {
			fmt.Fprintf(os.Stderr, "functional tests need a build (run make first, or set ORBIT_BUILD): %v\n", err)
			os.Exit(1)
		}
	}
	os.Exit(m.Run())
}

// requireKernel skips the test, saying why, when the kernel lacks a feature.
func requireKernel(t *testing.T, fs string) {
	t.Helper()
	b, err := os.ReadFile("/proc/filesystems")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "\t"+fs+"\n") {
		t.Skipf("SKIP: the kernel has no %s filesystem (not in /proc/filesystems)", fs)
	}
}

// env is one test's orbit installation: its own data and config dirs.
type env struct {
	t    *testing.T
	root string
	data string
	conf string
	// started are processes the test started in the background.
	started []*exec.Cmd
	// netns, when set, is the named network namespace (/run/netns) orbit
	// runs in: a "host" of a multi-host test. Only the network namespace
	// changes, so pods' mounts stay where the test and gc see them.
	netns string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	requireKernel(t, "overlay")
	root, err := os.MkdirTemp("", "orbit-ft-")
	if err != nil {
		t.Fatal(err)
	}
	// As /var/lib is: a pod in a user namespace passes through (0711).
	if err := os.Chmod(root, 0o711); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, root: root, data: filepath.Join(root, "data"), conf: filepath.Join(root, "etc")}
	if err := os.MkdirAll(filepath.Join(e.conf, "stage1.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, flavor := range []string{"default", "fly"} {
		cfg := fmt.Sprintf(`{"name":%q,"path":%q}`, flavor, filepath.Join(build, "libexec", "orbit-stage1"))
		if err := os.WriteFile(filepath.Join(e.conf, "stage1.d", flavor+".json"), []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(e.cleanup)
	return e
}

// cleanup removes everything the test made: its processes, its pods (via
// gc, which kills containers and removes cgroups), any mount left under its
// directory, and the directory.
func (e *env) cleanup() {
	for _, c := range e.started {
		if c.ProcessState == nil && c.Process != nil {
			_ = c.Process.Kill()
			_, _ = c.Process.Wait()
		}
	}
	uuids := e.podUUIDs()
	out, err := e.cmd("gc", "--grace-period=0", "--expire-prepared=0").CombinedOutput()
	if err != nil {
		e.t.Errorf("cleanup: orbit gc: %v: %s", err, out)
	}
	for _, u := range uuids {
		if p := findCgroups("orbit-" + u); len(p) > 0 {
			e.t.Errorf("cleanup: pod %s left cgroups %v", u, p)
			for _, d := range p {
				removeCgroupTree(d)
			}
		}
	}
	if ms := mountsUnder(e.root); len(ms) > 0 {
		e.t.Errorf("cleanup: mounts left under %s: %v", e.root, ms)
		for i := len(ms) - 1; i >= 0; i-- {
			_ = unix.Unmount(ms[i], unix.MNT_DETACH)
		}
	}
	if err := os.RemoveAll(e.root); err != nil {
		e.t.Errorf("cleanup: %v", err)
	}
}

func (e *env) podUUIDs() []string {
	var out []string
	dirs, _ := filepath.Glob(filepath.Join(e.data, "pods", "*", "*"))
	for _, d := range dirs {
		out = append(out, filepath.Base(d))
	}
	return out
}

func (e *env) cmd(args ...string) *exec.Cmd {
	all := append([]string{"--dir=" + e.data, "--local-config=" + e.conf, "--system-config=" + filepath.Join(e.root, "none")}, args...)
	c := exec.Command(filepath.Join(build, "bin", "orbit"), all...)
	if e.netns != "" {
		c = exec.Command("nsenter", append([]string{"--net=/run/netns/" + e.netns, c.Path}, all...)...)
	}
	c.Env = append(os.Environ(), "LC_ALL=C")
	return c
}

// result is a finished orbit command.
type result struct {
	stdout, stderr string
	code           int
}

// orbit runs orbit to completion.
func (e *env) orbit(args ...string) result {
	e.t.Helper()
	c := e.cmd(args...)
	var so, se bytes.Buffer
	c.Stdout, c.Stderr = &so, &se
	err := c.Run()
	r := result{stdout: so.String(), stderr: se.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		e.t.Fatalf("orbit %v: %v", args, err)
	}
	return r
}

// mustOrbit runs orbit and fails the test unless it exits 0.
func (e *env) mustOrbit(args ...string) string {
	e.t.Helper()
	r := e.orbit(args...)
	if r.code != 0 {
		e.t.Fatalf("orbit %v: exit %d\nstdout: %s\nstderr: %s", args, r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// start runs orbit in the background, its output going to a file (a pipe
// would keep Wait waiting for any process that inherited it).
func (e *env) start(args ...string) (*exec.Cmd, *os.File) {
	e.t.Helper()
	c := e.cmd(args...)
	out, err := os.CreateTemp(e.root, "output-")
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { out.Close() })
	c.Stdout, c.Stderr = out, out
	if err := c.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.started = append(e.started, c)
	return c, out
}

// output reads what a started command wrote.
func output(f *os.File) string {
	b, _ := os.ReadFile(f.Name())
	return string(b)
}

// fetchDemo stores the bundled demo image.
func (e *env) fetchDemo() {
	e.t.Helper()
	e.mustOrbit("fetch", "oci-archive:"+filepath.Join(build, "demo.oci.tar"))
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func mountsUnder(root string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) > 4 && strings.HasPrefix(fields[4], root) {
			out = append(out, fields[4])
		}
	}
	return out
}

// findCgroups returns every cgroup directory named name, in any hierarchy.
func findCgroups(name string) []string {
	var out []string
	filepath.WalkDir("/sys/fs/cgroup", func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if d.Name() == name {
			out = append(out, p)
			return filepath.SkipDir
		}
		return nil
	})
	return out
}

func removeCgroupTree(p string) {
	ents, _ := os.ReadDir(p)
	for _, e := range ents {
		if e.IsDir() {
			removeCgroupTree(filepath.Join(p, e.Name()))
		}
	}
	_ = os.Remove(p)
}
