//go:build functional

package functional

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ownerOf is the host user and group that own path.
func ownerOf(t *testing.T, path string) string {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%d:%d", st.Uid, st.Gid)
}

// podFile is a file of the pod's directory, whatever state it is in.
func (e *env) podFile(uuid string, rel ...string) string {
	m, _ := filepath.Glob(filepath.Join(append([]string{e.data, "pods", "*", uuid}, rel...)...))
	if len(m) != 1 {
		e.t.Fatalf("pod %s: %v: %v", uuid, rel, m)
	}
	return m[0]
}

func TestPodInUserNamespace(t *testing.T) {
	e := newNetEnv(t)
	port := hostServer(t)
	hostDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(hostDir, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Two apps of one image (its layer is mapped once for both), one of
	// them not root; an empty volume, a host one; the default network.
	uuidFile := filepath.Join(e.root, "uuid")
	script := fmt.Sprintf(`cat /proc/self/uid_map; echo id=$(id -u):$(id -g); echo sh=$(stat -c %%u:%%g /bin/busybox)
touch /written && echo written=$(stat -c %%u /written)
touch /data/d && echo data=$(stat -c %%u /data/d)
echo host=$(stat -c %%u /host/f)
echo links=$(ls /sys/class/net | tr '\n' ,)
wget -q -O - http://172.31.0.1:%d/; echo`, port)
	r := e.orbit("run", "--private-users=300000", "--net=default", pluginDir(), "--uuid-file-save="+uuidFile,
		"--volume=data,kind=empty", "--volume=host,kind=host,source="+hostDir,
		"demo", "--mount=volume=data,target=/data", "--mount=volume=host,target=/host", "--exec=/bin/sh", "--", "-c", script,
		"---", "demo", "--name=user", "--user=1000", "--group=1000", "--exec=/bin/sh", "--", "-c", "sleep 0.5; touch /tmp/u && echo user=$(id -u) tmp=$(stat -c %u /tmp/u)")
	if r.code != 0 {
		t.Fatalf("run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{
		"0     300000      65536", // the pod's IDs from 0 are the host's from 300000
		"id=0:0",
		"sh=0:0",         // the image's files, the host's root's on disk, are the pod's root's
		"written=0",      // the root of the app's overlay is the pod's root's
		"data=0",         // an empty volume is mapped
		"host=65534",     // a host volume is not: its root-owned file is nobody's
		"links=eth0,lo,", // sysfs of the pod's own network namespace
		"hello from the host",
		"user=1000 tmp=1000",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("the pod's output lacks %q:\n%s", want, r.stdout)
		}
	}
	b, _ := os.ReadFile(uuidFile)
	uuid := strings.TrimSpace(string(b))
	// On the host, what the apps wrote is in the pod's range, on a
	// mapped volume it is the image's own IDs.
	for rel, want := range map[string]string{
		"apps/demo/upper/written": "300000:300000",
		"apps/user/upper/tmp/u":   "301000:301000",
		"volumes/data/d":          "0:0",
	} {
		if got := ownerOf(t, e.podFile(uuid, rel)); got != want {
			t.Errorf("%s is the host's %s, want %s", rel, got, want)
		}
	}
	if ms := mountsUnder(e.root); len(ms) != 0 {
		t.Errorf("mounts left after the pod exited: %v", ms)
	}
	if _, err := os.Stat(e.podFile(uuid) + "/netns"); !os.IsNotExist(err) {
		t.Errorf("the pod's netns file is left: %v", err)
	}

	// An idmapped host volume (what the CRI asks for with a mount's
	// mappings): the host's root's files are the pod's root's, and its
	// root writes them as the host's root.
	manifest := filepath.Join(e.root, "idmapped.json")
	os.WriteFile(manifest, []byte(`{
  "userNamespace": {"uidMappings": [{"containerID": 0, "hostID": 300000, "size": 65536}],
                    "gidMappings": [{"containerID": 0, "hostID": 300000, "size": 65536}]},
  "volumes": [{"name": "h", "kind": "host", "source": "`+hostDir+`"}],
  "apps": [{"name": "a", "image": {"name": "demo"}, "mounts": [{"volume": "h", "path": "/h", "idmapped": true}],
            "process": {"args": ["/bin/sh", "-c", "stat -c %u /h/f; touch /h/new"]}}]}`), 0o644)
	if out := e.mustOrbit("run", "--pod-manifest="+manifest); strings.TrimSpace(out) != "0" {
		t.Errorf("idmapped host volume: the host root's file is %q in the pod, want 0", out)
	}
	if got := ownerOf(t, filepath.Join(hostDir, "new")); got != "0:0" {
		t.Errorf("a file the pod's root made on an idmapped volume is the host's %s, want 0:0", got)
	}

	// What cannot be: said before anything is made.
	before := len(e.podUUIDs())
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--private-users=300000", "--net=host", "demo"}, "not the host's network"},
		{[]string{"--private-users=300000", "demo", "--user=70000"}, "user 70000 is not mapped in the pod's user namespace"},
		{[]string{"--private-users=300000:1000", "demo"}, "ID 65534 (nobody, whom the pod's init runs as) is not mapped"},
		{[]string{"--private-users=0", "demo"}, "maps the host's root"},
		{[]string{"--private-users=300000", "--no-overlay", "demo"}, "needs an overlay root"},
	} {
		r := e.orbit(append([]string{"run"}, c.args...)...)
		if r.code == 0 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("run %v: exit %d, %q; want an error saying %q", c.args, r.code, r.stderr, c.want)
		}
	}
	if n := len(e.podUUIDs()); n != before {
		t.Errorf("refused runs left %d pods", n-before)
	}
}

func TestSandboxInUserNamespace(t *testing.T) {
	e := newEnv(t)
	e.fetchDemo()
	uuid, wait := e.startPod("--sandbox", "--private-users=310000")
	stopped := false
	defer func() {
		if !stopped {
			e.mustOrbit("stop", uuid)
			wait()
		}
	}()
	pid, err := os.ReadFile(e.podFile(uuid, "stage1", "supervisor-pid"))
	if err != nil {
		t.Fatal(err)
	}
	// The idmapped layers are mounts of the supervisor's namespace.
	layerMounts := func() int {
		mi, err := os.ReadFile("/proc/" + strings.TrimSpace(string(pid)) + "/mountinfo")
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, l := range strings.Split(string(mi), "\n") {
			if f := strings.Fields(l); len(f) > 4 && strings.Contains(f[4], "/stage1/idmapped/layers/") {
				n++
			}
		}
		return n
	}
	if got := ownerOf(t, e.podFile(uuid)); got != "0:310000" {
		t.Errorf("the running pod's directory is the host's %s, want 0:310000 (the pod root's group)", got)
	}
	add := func(script string) string {
		return strings.TrimSpace(e.mustOrbit("app", "add", uuid, "demo", "--exec=/bin/sh", "--", "-c", script))
	}
	a := add("id -u; cat /proc/self/uid_map")
	b := add("sleep 60")
	if n := layerMounts(); n != 1 {
		t.Errorf("two apps of one one-layer image: %d idmapped layer mounts, want 1", n)
	}
	e.mustOrbit("app", "start", uuid, a)
	waitFor(t, "the app to exit", 10*time.Second, func() bool {
		for _, l := range strings.Split(e.mustOrbit("app", "list", uuid), "\n") {
			if f := strings.Fields(l); len(f) > 2 && f[0] == a && f[1] == "exited" {
				return true
			}
		}
		return false
	})
	if out := e.mustOrbit("logs", "--app="+a, uuid); !strings.Contains(out, "0\n") || !strings.Contains(out, "0     310000      65536") {
		t.Errorf("the app's output: %q, want root in the pod's namespace", out)
	}
	e.mustOrbit("app", "rm", uuid, a)
	if n := layerMounts(); n != 1 {
		t.Errorf("one app left: %d idmapped layer mounts, want 1", n)
	}
	e.mustOrbit("app", "rm", uuid, b)
	if n := layerMounts(); n != 0 {
		t.Errorf("no app left: %d idmapped layer mounts, want 0", n)
	}
	e.mustOrbit("stop", uuid)
	wait()
	stopped = true
	if got := ownerOf(t, e.podFile(uuid)); got != "0:0" {
		t.Errorf("the stopped pod's directory is the host's %s, want 0:0 again", got)
	}
	if ms := mountsUnder(e.root); len(ms) != 0 {
		t.Errorf("mounts left after the pod ended: %v", ms)
	}
}
