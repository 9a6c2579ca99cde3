//go:build functional

package functional

import (
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// orbit run killed with SIGKILL at every moment of its life, from stage0
// preparing the pod through stage1 building it to the app running: after a
// gc nothing is left: no pod, no cgroup, no netns, no veth, lease or
// firewall rule (the network env's cleanup checks those), and the next run
// works.
func TestKillNineAtAnyStepLeavesNothingAfterGC(t *testing.T) {
	e := newNetEnv(t)
	e.fetchDemo()
	var uuids []string
	for i := 0; i < 12; i++ {
		c, _ := e.start("run", "--net=ftnet", pluginDir(), "demo", "--exec=/bin/sleep", "--", "41")
		time.Sleep(time.Duration(i*25) * time.Millisecond)
		_ = c.Process.Signal(syscall.SIGKILL)
		_ = c.Wait()
		dirs, _ := filepath.Glob(filepath.Join(e.data, "pods", "*", "*"))
		for _, d := range dirs {
			uuids = append(uuids, filepath.Base(d))
		}
	}
	waitFor(t, "every app to die with its supervisor", 15*time.Second, func() bool { return !pgrepSleep("41") })
	e.mustOrbit("gc", "--grace-period=0", "--expire-prepared=0")
	// Pods killed while stage0 was still making them are collected once
	// they are old enough to be sure nobody is making them any more.
	waitFor(t, "abandoned pods to age", 15*time.Second, func() bool {
		e.mustOrbit("gc", "--grace-period=0", "--expire-prepared=0")
		return len(e.podUUIDs()) == 0
	})
	for _, u := range uuids {
		if cg := findCgroups("orbit-" + u); len(cg) > 0 {
			t.Errorf("cgroups left for pod %s: %v", u, cg)
		}
	}
	if ms := mountsUnder(e.root); len(ms) > 0 {
		t.Errorf("mounts left: %v", ms)
	}
	if r := e.orbit("run", "--net=ftnet", pluginDir(), "demo", "--exec=/bin/echo", "--", "still fine"); r.stdout != "still fine\n" {
		t.Fatalf("run after the kills: %+v", r)
	}
	e.mustOrbit("gc", "--grace-period=0")
	if leases := ipamLeases(e.ipamDir); len(leases) > 0 {
		t.Errorf("leases left: %v", leases)
	}

}
