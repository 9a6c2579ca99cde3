//go:build functional

package functional

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPodManifestFileRunsThePodItDescribes(t *testing.T) {
	e := newEnv(t)
	e.fetchDemo()
	var imgs []struct{ ID string }
	if err := json.Unmarshal([]byte(e.mustOrbit("image", "list", "--format=json")), &imgs); err != nil || len(imgs) != 1 {
		t.Fatalf("image list: %v %+v", err, imgs)
	}
	mf := filepath.Join(e.root, "pod.json")
	os.WriteFile(mf, []byte(fmt.Sprintf(`{
  "hostname": "from-file",
  "volumes": [{"name": "shared", "kind": "empty"}],
  "apps": [
    {"name": "one", "image": {"name": "demo"},
     "mounts": [{"volume": "shared", "path": "/shared"}],
     "process": {"args": ["/bin/sh", "-c", "echo one > /shared/one"]}},
    {"name": "two", "image": {"id": %q},
     "mounts": [{"volume": "shared", "path": "/shared"}],
     "process": {"args": ["/bin/sh", "-c", "while [ ! -e /shared/one ]; do sleep 0.1; done; hostname; id -u; pwd; echo $FOO $AC_APP_NAME; cat /shared/one"],
                 "env": ["FOO=bar"], "user": {"username": "user"}, "cwd": "/tmp"}}
  ]
}`, imgs[0].ID)), 0o644)
	out := e.mustOrbit("run", "--pod-manifest="+mf)
	if out != "from-file\n1000\n/tmp\nbar two\none\n" {
		t.Fatalf("output %q", out)
	}
	if p := e.listJSON(); len(p) != 1 || len(p[0].Apps) != 2 {
		t.Fatalf("list: %+v", p)
	}
}

func TestPodManifestBadInputIsRefused(t *testing.T) {
	e := newEnv(t)
	e.fetchDemo()
	write := func(s string) string {
		f := filepath.Join(e.root, fmt.Sprintf("m-%d.json", len(s)))
		os.WriteFile(f, []byte(s), 0o644)
		return f
	}
	good := write(`{"apps": [{"name": "a", "image": {"name": "demo"}, "process": {"args": ["/bin/true"]}}]}`)
	cases := []struct {
		args []string
		msg  string
	}{
		{[]string{"run", "--pod-manifest=" + good, "demo"}, "no images on the command line"},
		{[]string{"run", "--pod-manifest=" + good, "--hostname=x"}, "--hostname cannot be combined with --pod-manifest"},
		{[]string{"run", "--pod-manifest=" + write(`{"apps": [{"name": "a", "image": {"name": "nosuch"}}]}`)}, "nosuch"},
		{[]string{"run", "--pod-manifest=" + write(`{"apps": [{"name": "a", "image": {"name": "demo"}, "procss": {}}]}`)}, `unknown field "procss"`},
		{[]string{"run", "--pod-manifest=" + write(`{"apps": [{"name": "a", "image": {"name": "demo"}, "process": {"args": ["/nope"]}}]}`)}, `executable "/nope" is not in the image`},
		{[]string{"run", "--pod-manifest=" + write(`{"apps": [{"name": "a", "image": {"name": "demo"}, "process": {"args": ["/bin/true"], "user": {"username": "ghost"}}}]}`)}, "ghost"},
		{[]string{"run", "--pod-manifest=" + filepath.Join(e.root, "missing.json")}, "no such file"},
		{[]string{"run"}, "no image given"},
	}
	for _, c := range cases {
		r := e.orbit(c.args...)
		if r.code == 0 || !strings.Contains(r.stderr, c.msg) {
			t.Errorf("orbit %v: exit %d, stderr %q; want a failure saying %q", c.args, r.code, r.stderr, c.msg)
		}
	}
	if u := e.podUUIDs(); len(u) != 0 {
		t.Fatalf("bad input left pods: %v", u)
	}
}

// treeSum hashes every name, mode and content under dir.
func treeSum(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s %v %d\n", p, fi.Mode(), fi.Size())
		if fi.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(h, f)
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

func TestNoOverlayRootIsACopyAndWritesStayInThePod(t *testing.T) {
	e := newEnv(t)
	e.fetchDemo()
	layers := filepath.Join(e.data, "images", "layers")
	before := treeSum(t, layers)
	for _, flavor := range []string{"default", "fly"} {
		uf := filepath.Join(e.root, "uuid-"+flavor)
		out := e.mustOrbit("run", "--no-overlay", "--stage1-name="+flavor, "--uuid-file-save="+uf, "demo", "--exec=/bin/sh", "--", "-c",
			`echo new > /bin/newfile; echo changed > /etc/passwd; rm /bin/ls; awk '$5 == "/"' /proc/self/mountinfo`)
		if strings.Contains(out, "overlay") {
			t.Errorf("%s: the root is an overlay: %q", flavor, out)
		}
		uuid, _ := os.ReadFile(uf)
		rootfs := filepath.Join(e.data, "pods", "exited-garbage", strings.TrimSpace(string(uuid)), "apps", "demo", "rootfs")
		if b, err := os.ReadFile(filepath.Join(rootfs, "bin", "newfile")); err != nil || string(b) != "new\n" {
			t.Errorf("%s: the write is not in the pod's copy: %q %v", flavor, b, err)
		}
	}
	if after := treeSum(t, layers); after != before {
		t.Fatal("writes in a --no-overlay pod changed the store's layers")
	}
	// A fresh pod sees the image as it was.
	if out := e.runOut("--no-overlay", "demo", "--exec=/bin/sh", "--", "-c", "test -e /bin/newfile && echo leaked; test -e /bin/ls && echo ls-there"); out != "ls-there\n" {
		t.Fatalf("a second pod's copy: %q", out)
	}
}

// hostPID, hostIPC and ownPIDNamespace put apps where they say; a
// propagating mount at pod start is refused, naming the mount.
func TestPodManifestNamespaces(t *testing.T) {
	e := newEnv(t)
	e.fetchDemo()
	write := func(name, s string) string {
		f := filepath.Join(e.root, name)
		os.WriteFile(f, []byte(s), 0o644)
		return f
	}
	hostPID, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		t.Fatal(err)
	}
	hostIPC, _ := os.Readlink("/proc/self/ns/ipc")
	nsOf := `readlink /proc/self/ns/pid; readlink /proc/self/ns/ipc`
	out := e.mustOrbit("run", "--pod-manifest="+write("host.json", `{"hostPID": true, "hostIPC": true,
  "apps": [{"name": "a", "image": {"name": "demo"}, "process": {"args": ["/bin/sh", "-c", "`+nsOf+`"]}}]}`))
	if out != hostPID+"\n"+hostIPC+"\n" {
		t.Errorf("host-PID, host-IPC pod: namespaces %q, want the host's %s %s", out, hostPID, hostIPC)
	}
	out = e.mustOrbit("run", "--pod-manifest="+write("own.json", `{"apps": [
  {"name": "own", "ownPIDNamespace": true, "image": {"name": "demo"}, "process": {"args": ["/bin/sh", "-c", "echo $$; readlink /proc/self/ns/pid"]}},
  {"name": "pod", "image": {"name": "demo"}, "process": {"args": ["/bin/sh", "-c", "sleep 0.5; readlink /proc/self/ns/pid"]}}]}`))
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || lines[0] != "1" || lines[1] == lines[2] || lines[1] == hostPID || lines[2] == hostPID {
		t.Errorf("own PID namespace: %q, want 1 and two namespaces, neither the host's", out)
	}
	src := t.TempDir()
	r := e.orbit("run", "--pod-manifest="+write("prop.json", `{"volumes": [{"name": "v", "kind": "host", "source": "`+src+`"}],
  "apps": [{"name": "a", "image": {"name": "demo"}, "mounts": [{"volume": "v", "path": "/v", "propagation": "rslave"}], "process": {"args": ["/bin/true"]}}]}`))
	if r.code == 0 || !strings.Contains(r.stderr, "mount /v: rslave propagation is offered only to apps added to a running sandbox pod") {
		t.Errorf("rslave mount at pod start: exit %d, %s", r.code, r.stderr)
	}
	if r := e.orbit("run", "--pod-manifest="+write("flyhost.json", `{"flavor": "fly", "hostPID": true,
  "apps": [{"name": "a", "image": {"name": "demo"}, "process": {"args": ["/bin/true"]}}]}`)); r.code == 0 || !strings.Contains(r.stderr, "a fly pod is in the host's namespaces already") {
		t.Errorf("host-PID fly pod: exit %d, %s", r.code, r.stderr)
	}
}
