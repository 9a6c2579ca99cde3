// Command orbit-bench runs Orbit side by side with crun, runc, podman,
// skopeo and umoci on the same inputs and writes a table of medians and
// ratios (docs/benchmarks.md). scripts/bench installs the peers and runs
// it; it is never part of the tests.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/orbit-pods/orbit/bench"
)

type setup struct {
	build, work string
	orbit       []string // orbit with its flags
	bundle      string
	podmanImage string
	registry    string
}

func main() {
	build := flag.String("build", "build", "Orbit's build directory")
	work := flag.String("work", "/var/tmp/orbit-bench", "scratch directory")
	out := flag.String("o", "bench-results.md", "results file")
	rounds := flag.Int("rounds", 20, "timed rounds per command")
	registry := flag.String("registry", "", "HOST:PORT of a local registry holding big:1 (skip registry fetches if empty)")
	only := flag.String("only", "", "comma-separated measures to run (start,pod3,import,rss,list); all if empty")
	flag.Parse()
	s := &setup{build: abs(*build), work: abs(*work), registry: *registry}
	if err := s.prepare(); err != nil {
		fail(err)
	}
	f, err := os.Create(*out)
	if err != nil {
		fail(err)
	}
	defer f.Close()
	w := io.MultiWriter(f, os.Stdout)
	fmt.Fprintf(w, "# Orbit benchmarks, %s\n\nMedians of alternating runs on one machine (%s); `orbit / this` below 1 means Orbit is faster.\n", time.Now().UTC().Format(time.RFC3339), hostInfo())
	ctx := context.Background()
	want := func(m string) bool { return *only == "" || strings.Contains(","+*only+",", ","+m+",") }
	if want("start") {
		bench.Table(w, "1. Start to exit of a one-app pod running /bin/true", bench.Run(ctx, s.startGroup(*rounds)))
	}
	if want("pod3") {
		bench.Table(w, "2. Start to exit of a 3-app pod", bench.Run(ctx, s.pod3Group(*rounds)))
	}
	if want("import") {
		bench.Table(w, "3. Import and render of a multi-layer image", bench.Run(ctx, s.importGroup()))
	}
	if want("rss") {
		s.rss(w)
	}
	if want("list") {
		for _, n := range []int{100, 1000} {
			s.listAndGC(w, n)
		}
	}
}

func (s *setup) prepare() error {
	data := filepath.Join(s.work, "orbit")
	etc := filepath.Join(s.work, "etc", "stage1.d")
	if err := os.MkdirAll(etc, 0o755); err != nil {
		return err
	}
	cfg := fmt.Sprintf(`{"name":"default","path":%q}`, filepath.Join(s.build, "libexec", "orbit-stage1"))
	if err := os.WriteFile(filepath.Join(etc, "default.json"), []byte(cfg), 0o644); err != nil {
		return err
	}
	s.orbit = []string{filepath.Join(s.build, "bin", "orbit"), "--dir=" + data, "--local-config=" + filepath.Dir(etc)}
	demo := filepath.Join(s.build, "demo.oci.tar")
	if err := sh(append(s.orbit, "fetch", "oci-archive:"+demo)...); err != nil {
		return err
	}
	// One rootfs for the OCI runtimes: the same image, rendered.
	s.bundle = filepath.Join(s.work, "bundle")
	os.RemoveAll(s.bundle)
	if err := sh(append(s.orbit, "image", "render", "demo", filepath.Join(s.bundle, "rootfs"))...); err != nil {
		return err
	}
	if err := sh("runc", "spec", "--bundle", s.bundle); err != nil {
		return err
	}
	var spec map[string]any
	b, _ := os.ReadFile(filepath.Join(s.bundle, "config.json"))
	if err := json.Unmarshal(b, &spec); err != nil {
		return err
	}
	proc := spec["process"].(map[string]any)
	proc["args"], proc["terminal"] = []string{"/bin/true"}, false
	b, _ = json.MarshalIndent(spec, "", "  ")
	if err := os.WriteFile(filepath.Join(s.bundle, "config.json"), b, 0o644); err != nil {
		return err
	}
	s.podmanImage = "localhost/orbit-bench-demo:latest"
	id, err := exec.Command("podman", "pull", "-q", "oci-archive:"+demo).Output()
	if err != nil {
		return fmt.Errorf("podman pull oci-archive:%s: %w", demo, err)
	}
	return sh("podman", "tag", strings.TrimSpace(string(id)), s.podmanImage)
}

func (s *setup) startGroup(rounds int) bench.Group {
	g := bench.Group{Rounds: rounds, Warmup: 2, Commands: []bench.Command{
		{Name: "orbit run (no network)", Argv: append(s.orbit, "run", "demo", "--exec=/bin/true")},
		{Name: "crun run", Argv: []string{"crun", "--root", filepath.Join(s.work, "crun"), "run", "--bundle", s.bundle, "bench-crun"}},
		{Name: "runc run", Argv: []string{"runc", "--root", filepath.Join(s.work, "runc"), "run", "--bundle", s.bundle, "bench-runc"}},
		{Name: "podman run --rm --network=none", Argv: []string{"podman", "run", "--rm", "--network=none", "--pull=never", s.podmanImage, "/bin/true"}},
	}}
	if hasNet(s.orbit) {
		g.Commands = append(g.Commands, bench.Command{Name: "orbit run --net=default", Argv: append(s.orbit, "run", "--net=default", "--net-plugin-dir="+filepath.Join(s.build, "cni"), "demo", "--exec=/bin/true")})
	}
	return g
}

func hasNet(orbit []string) bool {
	out, _ := exec.Command(orbit[0], "run", "--help").CombinedOutput()
	return strings.Contains(string(out), "--net")
}

func (s *setup) pod3Group(rounds int) bench.Group {
	app := func(n string) []string { return []string{"demo", "--name=" + n, "--exec=/bin/true"} }
	argv := append(append([]string{}, s.orbit...), "run")
	argv = append(argv, app("a")...)
	argv = append(append(argv, "---"), app("b")...)
	argv = append(append(argv, "---"), app("c")...)
	crun3 := fmt.Sprintf("for i in 1 2 3; do crun --root %s run --bundle %s bench-crun3-$i; done", filepath.Join(s.work, "crun"), s.bundle)
	return bench.Group{Rounds: rounds, Warmup: 2, Commands: []bench.Command{
		{Name: "orbit run, 3 apps in one pod", Argv: argv},
		{Name: "crun run, 3 containers one after another", Argv: bench.Shell(crun3)},
	}}
}

// importGroup fetches the big image (scripts/bench makes it: big.oci,
// a layout of several layers from Debian's files) into an empty store.
func (s *setup) importGroup() bench.Group {
	layout := filepath.Join(s.work, "big.oci")
	fresh := filepath.Join(s.work, "import")
	reset := bench.Shell("rm -rf " + fresh + " && mkdir -p " + fresh)
	orbitFresh := []string{s.orbit[0], "--dir=" + fresh + "/orbit", s.orbit[2]}
	floor := fmt.Sprintf(`cd %s && for l in $(cat %s/layers); do mkdir -p %s/floor && zcat blobs/sha256/$l | tar -x -C %s/floor; done`, layout, s.work, fresh, fresh)
	g := bench.Group{Rounds: 5, Warmup: 1, Commands: []bench.Command{
		{Name: "orbit fetch oci:LAYOUT", Prepare: reset, Argv: append(orbitFresh, "fetch", "oci:"+layout+":big")},
		{Name: "skopeo copy oci:LAYOUT + umoci unpack", Prepare: reset, Argv: bench.Shell(fmt.Sprintf(
			"skopeo copy -q oci:%s:big oci:%s/copy:big && umoci unpack --image %s/copy:big %s/bundle >/dev/null", layout, fresh, fresh, fresh))},
		{Name: "podman pull oci:LAYOUT", Prepare: bench.Shell("podman images --format '{{.Repository}}' | grep big.oci | xargs -r podman rmi -f >/dev/null; " + reset[2]),
			Argv: []string{"podman", "pull", "-q", "oci:" + layout + ":big"}},
		{Name: "zcat, tar -x of the layers (floor)", Prepare: reset, Argv: bench.Shell(floor)},
	}}
	if s.registry != "" {
		g.Commands = append(g.Commands, bench.Command{Name: "orbit fetch docker:// (local registry)", Prepare: reset,
			Argv: append(orbitFresh, "--insecure-options=http", "fetch", "docker://"+s.registry+"/big:1")})
	}
	return g
}

// rss compares the memory of what stays resident for an idle pod.
func (s *setup) rss(w io.Writer) {
	fmt.Fprintf(w, "\n### 4. Resident memory of what supervises an idle one-app pod\n\n| runtime | process | RSS |\n|---|---|---:|\n")
	c := exec.Command(s.orbit[0], append(s.orbit[1:], "run", "demo", "--exec=/bin/sleep", "--", "30")...)
	if err := c.Start(); err == nil {
		time.Sleep(2 * time.Second)
		if kb, err := bench.RSS(c.Process.Pid); err == nil {
			fmt.Fprintf(w, "| orbit | orbit-stage1 (the supervisor) | %d KiB |\n", kb)
		}
		// This pod's init only: the supervisor forks it, other pods on
		// the machine have their own.
		for _, pid := range bench.PidsOf("orbit-pod-init") {
			if bench.ParentOf(pid) != c.Process.Pid {
				continue
			}
			if kb, err := bench.RSS(pid); err == nil {
				fmt.Fprintf(w, "| orbit | orbit-pod-init (the pod's PID 1) | %d KiB |\n", kb)
			}
		}
		_ = c.Process.Signal(os.Interrupt)
		_ = c.Wait()
	}
	out, err := exec.Command("podman", "run", "-d", "--rm", "--network=none", "--pull=never", s.podmanImage, "/bin/sleep", "30").Output()
	if err == nil {
		time.Sleep(2 * time.Second)
		for _, pid := range bench.PidsOf("conmon") {
			if kb, err := bench.RSS(pid); err == nil {
				fmt.Fprintf(w, "| podman | conmon | %d KiB |\n", kb)
			}
		}
		_ = exec.Command("podman", "rm", "-f", "-t", "0", strings.TrimSpace(string(out))).Run()
	}
	fmt.Fprintf(w, "| crun, runc | (none: `run` in the foreground is the only process, and a detached container leaves no runtime process) | 0 |\n")
}

// listAndGC times list with n exited pods, then one gc of them all.
func (s *setup) listAndGC(w io.Writer, n int) {
	_ = sh(append(s.orbit, "gc", "--grace-period=0")...)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			_ = exec.Command(s.orbit[0], append(s.orbit[1:], "run", "demo", "--exec=/bin/true")...).Run()
			<-sem
		}()
	}
	wg.Wait()
	res := bench.Run(context.Background(), bench.Group{Rounds: 10, Warmup: 1, Commands: []bench.Command{
		{Name: fmt.Sprintf("orbit list, %d exited pods", n), Argv: append(s.orbit, "list")},
		{Name: fmt.Sprintf("orbit list --format=json, %d exited pods", n), Argv: append(s.orbit, "list", "--format=json")},
	}})
	bench.Table(w, fmt.Sprintf("5. list with %d exited pods", n), res)
	start := time.Now()
	err := sh(append(s.orbit, "gc", "--grace-period=0")...)
	fmt.Fprintf(w, "\norbit gc of %d exited pods: %.2f s (%v)\n", n, time.Since(start).Seconds(), errOK(err))
}

func errOK(err error) string {
	if err != nil {
		return "failed: " + err.Error()
	}
	return "ok"
}

func sh(argv ...string) error {
	c := exec.Command(argv[0], argv[1:]...)
	c.Stdout, c.Stderr = io.Discard, os.Stderr
	if err := c.Run(); err != nil {
		return fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
	}
	return nil
}

func hostInfo() string {
	out, _ := exec.Command("uname", "-r").Output()
	return fmt.Sprintf("%d CPUs, Linux %s", numCPU(), strings.TrimSpace(string(out)))
}

func numCPU() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(b), "processor\t:")
}

func abs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		fail(err)
	}
	return a
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "orbit-bench:", err)
	os.Exit(1)
}
