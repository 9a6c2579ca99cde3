//go:build functional

package functional

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startStoppedAt starts orbit with ORBIT_FAULTPOINT=step and waits until it
// has stopped itself there; the caller then kills it.
func (e *env) startStoppedAt(step string, args ...string) int {
	e.t.Helper()
	c := e.cmd(args...)
	c.Env = append(c.Env, "ORBIT_FAULTPOINT="+step)
	// A process group of its own: when a group with a stopped member
	// becomes orphaned (other tests' processes come and go in the test
	// binary's group), the kernel sends it SIGHUP and SIGCONT, which
	// would carry orbit past its fault point.
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := os.CreateTemp(e.root, "output-")
	if err != nil {
		e.t.Fatal(err)
	}
	defer out.Close()
	c.Stdout, c.Stderr = out, out
	if err := c.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.started = append(e.started, c)
	exited := make(chan struct{})
	go func() { _ = c.Wait(); close(exited) }()
	deadline := time.Now().Add(60 * time.Second)
	for !processStopped(c.Process.Pid) {
		select {
		case <-exited:
			e.t.Fatalf("orbit %v ended before reaching %s: %s", args, step, output(out))
		default:
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("orbit %v never stopped at %s", args, step)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := c.Process.Signal(syscall.SIGKILL); err != nil {
		e.t.Fatal(err)
	}
	<-exited
	return c.Process.Pid
}

func processStopped(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && len(s) > i+2 && s[i+2] == 'T'
}

// storeTemp lists what is left in the store's temp directory.
func (e *env) storeTemp() []string {
	ents, _ := os.ReadDir(filepath.Join(e.data, "images", "tmp"))
	var out []string
	for _, d := range ents {
		out = append(out, d.Name())
	}
	return out
}

// kill -9 of `orbit fetch` at each step between reading a layer and
// recording the image: afterwards the image commands work, gc removes the
// half-made items, nothing half-made is listed, and fetching again works.
func TestKillNineAtEachFetchStep(t *testing.T) {
	for _, step := range []string{
		"fetch.layer-unpacked", // layer extracted, blob not committed
		"fetch.blob-committed", // blob committed, layer not renamed in
		"fetch.layers-stored",  // all layers in, manifest and config not
		"fetch.before-record",  // every blob in, no index record
		"fetch.index-updated",  // index has it, the record file not yet
	} {
		t.Run(step, func(t *testing.T) {
			e := newEnv(t)
			e.startStoppedAt(step, "fetch", "oci-archive:"+filepath.Join(build, "demo.oci.tar"))
			list := e.mustOrbit("image", "list")
			listed := strings.Contains(list, "demo")
			if want := step == "fetch.index-updated"; listed != want {
				t.Errorf("image list after the kill lists the demo: %v, want %v:\n%s", listed, want, list)
			}
			e.mustOrbit("image", "gc", "--grace-period=0")
			if tmp := e.storeTemp(); len(tmp) > 0 {
				t.Errorf("temp items left after image gc: %v", tmp)
			}
			e.fetchDemo()
			if r := e.orbit("run", "demo", "--exec=/bin/echo", "--", "after", step); r.code != 0 || r.stdout != "after "+step+"\n" {
				t.Fatalf("run after the kill: %+v", r)
			}
			e.mustOrbit("gc", "--grace-period=0")
			if ms := mountsUnder(e.root); len(ms) > 0 {
				t.Errorf("mounts left: %v", ms)
			}
		})
	}
}

// kill -9 of `orbit run` at each step from making the pod directory to the
// app running, through the exec of stage1: afterwards list and status work,
// gc takes the pod with its mounts, cgroups, netns, veth and lease (the
// network env's cleanup checks the last ones), and the next run works.
func TestKillNineAtEachPrepareAndStartStep(t *testing.T) {
	e := newNetEnv(t)
	e.fetchDemo()
	for _, step := range []string{
		"prepare.pod-created",
		"prepare.manifest-written",
		"prepare.apps-made",
		"run.state-run",
		"run.netns-made",
		"stage1.overlays-mounted",
		"stage1.network-attached",
		"stage1.init-started",
		"stage1.running",
	} {
		before := map[string]bool{}
		for _, u := range e.podUUIDs() {
			before[u] = true
		}
		e.startStoppedAt(step, "run", "--net=ftnet", pluginDir(), "demo", "--exec=/bin/sleep", "--", "42")
		var uuid string
		for _, u := range e.podUUIDs() {
			if !before[u] {
				uuid = u
			}
		}
		if uuid == "" {
			t.Fatalf("%s: no pod directory to look at", step)
		}
		e.mustOrbit("list")
		if r := e.orbit("status", uuid); r.code != 0 {
			t.Errorf("%s: status of the killed pod: %+v", step, r)
		}
		waitFor(t, step+": the app to die with its supervisor", 15*time.Second, func() bool { return !pgrepSleep("42") })
		// A pod killed while stage0 was making it is collected once it
		// is old enough that nobody can still be making it.
		waitFor(t, step+": gc to collect the pod", 20*time.Second, func() bool {
			e.mustOrbit("gc", "--grace-period=0", "--expire-prepared=0")
			return len(e.podUUIDs()) == 0
		})
		if cg := findCgroups("orbit-" + uuid); len(cg) > 0 {
			t.Errorf("%s: cgroups left: %v", step, cg)
		}
		if ms := mountsUnder(e.root); len(ms) > 0 {
			t.Errorf("%s: mounts left: %v", step, ms)
		}
		if leases := ipamLeases(e.ipamDir); len(leases) > 0 {
			t.Errorf("%s: leases left: %v", step, leases)
		}
	}
	if r := e.orbit("run", "--net=ftnet", pluginDir(), "demo", "--exec=/bin/echo", "--", "still fine"); r.stdout != "still fine\n" {
		t.Fatalf("run after the kills: %+v", r)
	}
}

// A corrupted index.db (torn by a crash or a bad disk) and stale lock files
// (the store's, and a killed fetch's temp item) stop nothing: image list
// rebuilds the index from the per-image records and says so, pods and
// images keep working, gc cleans up.
func TestCorruptIndexAndStaleLocksAreSurvived(t *testing.T) {
	e := newEnv(t)
	// A fetch killed while it held the store lock and a temp item.
	e.startStoppedAt("fetch.layer-unpacked", "fetch", "oci-archive:"+filepath.Join(build, "demo.oci.tar"))
	e.fetchDemo()
	e.mustOrbit("run", "demo", "--exec=/bin/true")
	exited := e.podUUIDs()
	if len(exited) != 1 {
		t.Fatalf("pods: %v", exited)
	}
	storeDir := filepath.Join(e.data, "images")
	if err := os.WriteFile(filepath.Join(storeDir, "lock"), []byte("left by a crash\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	junk := make([]byte, 64<<10)
	for i := range junk {
		junk[i] = byte(i*7 + 3)
	}
	if err := os.WriteFile(filepath.Join(storeDir, "index.db"), junk, 0o600); err != nil {
		t.Fatal(err)
	}
	r := e.orbit("image", "list")
	if r.code != 0 || !strings.Contains(r.stdout, "demo") {
		t.Fatalf("image list on a corrupt index: %+v", r)
	}
	if !strings.Contains(r.stderr, "index") {
		t.Errorf("image list did not say it rebuilt the index: %q", r.stderr)
	}
	e.mustOrbit("list")
	e.mustOrbit("status", exited[0])
	if got := e.mustOrbit("run", "demo", "--exec=/bin/echo", "--", "works"); got != "works\n" {
		t.Errorf("run after the corruption: %q", got)
	}
	e.mustOrbit("image", "gc", "--grace-period=0")
	if tmp := e.storeTemp(); len(tmp) > 0 {
		t.Errorf("temp items left after image gc: %v", tmp)
	}
	e.mustOrbit("gc", "--grace-period=0")
	if left := e.podUUIDs(); len(left) != 0 {
		t.Errorf("pods left after gc: %v", left)
	}
}
