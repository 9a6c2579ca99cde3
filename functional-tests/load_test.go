//go:build functional

package functional

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Fifty networked pods started at once while gc runs in a loop: every pod
// runs to completion with its own address, none is lost or collected while
// it runs, and nothing is left afterwards (the network env's cleanup checks
// veths, leases and firewall rules; the base env's mounts and cgroups).
func TestFiftyNetworkedPodsWithGCInALoop(t *testing.T) {
	e := newNetEnv(t)
	e.fetchDemo()
	const n = 50
	stop := make(chan struct{})
	var gcRuns, gcErrs atomic.Int32
	var gcDone sync.WaitGroup
	gcDone.Add(1)
	go func() {
		defer gcDone.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if r := e.orbit("gc", "--grace-period=0"); r.code != 0 {
				gcErrs.Add(1)
				t.Errorf("gc during the load: %s", r.stderr)
			}
			gcRuns.Add(1)
			time.Sleep(100 * time.Millisecond)
		}
	}()
	var wg sync.WaitGroup
	results := make([]result, n)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = e.orbit("run", "--net=ftnet", pluginDir(), "demo", "--exec=/bin/sh", "--", "-c",
				fmt.Sprintf(`ip -4 -o addr show eth0 | awk '{print $4}'; echo pod %d`, i))
		}()
	}
	wg.Wait()
	close(stop)
	gcDone.Wait()
	addrs := map[string]int{}
	for i, r := range results {
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if r.code != 0 || len(lines) != 2 || lines[1] != fmt.Sprintf("pod %d", i) {
			t.Errorf("pod %d: exit %d, stdout %q, stderr %q", i, r.code, r.stdout, r.stderr)
			continue
		}
		if prev, dup := addrs[lines[0]]; dup {
			t.Errorf("pods %d and %d both had address %s", prev, i, lines[0])
		}
		addrs[lines[0]] = i
	}
	t.Logf("%d pods, %d distinct addresses, %d gc runs during the load", n, len(addrs), gcRuns.Load())
	e.mustOrbit("gc", "--grace-period=0")
	if p := e.listJSON(); len(p) != 0 {
		t.Fatalf("%d pods left after the final gc", len(p))
	}
}
