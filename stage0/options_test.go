package stage0

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/orbit-pods/orbit/pod"
)

func TestParseVolume(t *testing.T) {
	dir := t.TempDir()
	good := map[string]pod.Volume{
		"data,kind=empty":                           {Name: "data", Kind: "empty"},
		"data,kind=empty,mode=0700,uid=1,gid=2":     {Name: "data", Kind: "empty", Mode: 0o700, UID: 1, GID: 2},
		"h,kind=host,source=" + dir + ",readOnly=1": {Name: "h", Kind: "host", Source: dir, ReadOnly: true},
	}
	for in, want := range good {
		got, err := ParseVolume(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("ParseVolume(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "Bad,kind=empty", "v", "v,kind=host", "v,kind=host,source=rel", "v,kind=empty,source=/x",
		"v,kind=host,source=" + dir + ",mode=1", "v,kind=empty,mode=9", "v,kind=empty,color=red", "v,kind=empty,kind=host", "v,kind"} {
		if _, err := ParseVolume(in); err == nil {
			t.Errorf("ParseVolume(%q) accepted", in)
		}
	}
}

func TestParseMount(t *testing.T) {
	got, err := ParseMount("volume=data,target=/var/data,readOnly=true")
	if err != nil || got != (pod.MountPoint{Volume: "data", Path: "/var/data", ReadOnly: true}) {
		t.Fatalf("%+v %v", got, err)
	}
	for _, in := range []string{"", "volume=data", "target=/x", "volume=d,target=rel", "volume=d,target=/a/../b", "volume=d,target=/x,foo=1"} {
		if _, err := ParseMount(in); err == nil {
			t.Errorf("ParseMount(%q) accepted", in)
		}
	}
}

func TestParseLimits(t *testing.T) {
	if n, err := ParseMemory("256M"); err != nil || n != 256<<20 {
		t.Errorf("ParseMemory(256M) = %d, %v", n, err)
	}
	for _, in := range []string{"", "lots", "-1", "1k"} {
		if _, err := ParseMemory(in); err == nil {
			t.Errorf("ParseMemory(%q) accepted", in)
		}
	}
	for in, want := range map[string]int64{"500m": 50000, "2": 200000, "0.25": 25000} {
		if q, p, err := ParseCPU(in); err != nil || q != want || p != 100000 {
			t.Errorf("ParseCPU(%q) = %d/%d, %v; want %d", in, q, p, err, want)
		}
	}
	for _, in := range []string{"", "0", "-1", "abc", "0.1m"} {
		if _, _, err := ParseCPU(in); err == nil {
			t.Errorf("ParseCPU(%q) accepted", in)
		}
	}
}

func TestParseCapsAndCapsFor(t *testing.T) {
	caps, err := ParseCaps("--caps-retain", "net_admin, CAP_SYS_TIME")
	if err != nil || !reflect.DeepEqual(caps, []string{"CAP_NET_ADMIN", "CAP_SYS_TIME"}) {
		t.Fatalf("%v %v", caps, err)
	}
	if _, err := ParseCaps("--caps-retain", "CAP_FLY"); err == nil {
		t.Fatal("accepted CAP_FLY")
	}
	c := capsFor(nil, []string{"CAP_KILL"}, []string{"CAP_CHOWN", "CAP_KILL"})
	if !reflect.DeepEqual(c.Bounding, []string{"CAP_CHOWN"}) {
		t.Fatalf("remove: %v", c.Bounding)
	}
	if capsFor(nil, nil, []string{"CAP_CHOWN"}) != nil {
		t.Fatal("no flags should leave the default to stage1")
	}
	if c := capsFor([]string{}, nil, []string{"CAP_CHOWN"}); len(c.Bounding) != 0 || c.Bounding == nil {
		t.Fatalf("retain none: %#v", c.Bounding)
	}
}

func TestMergeEnv(t *testing.T) {
	got := mergeEnv([]string{"A=1", "B=2"}, "B=3", "C=4")
	if !reflect.DeepEqual(got, []string{"A=1", "B=3", "C=4"}) {
		t.Fatal(got)
	}
}

// The layers are read as overlayfs stacks them: upper wins, whiteouts
// hide, symlinks resolve inside the image.
func TestResolveInLayers(t *testing.T) {
	lower, upper := t.TempDir(), t.TempDir()
	os.MkdirAll(filepath.Join(lower, "bin"), 0o755)
	os.WriteFile(filepath.Join(lower, "bin", "busybox"), []byte("x"), 0o755)
	os.Symlink("busybox", filepath.Join(lower, "bin", "sh"))
	os.Symlink("/bin", filepath.Join(upper, "sbin"))
	os.MkdirAll(filepath.Join(upper, "etc"), 0o755)
	os.WriteFile(filepath.Join(upper, "etc", "passwd"), []byte("root:x:0:0::/:/bin/sh\n"), 0o644)
	layers := []string{lower, upper}
	for p, want := range map[string]bool{"/bin/sh": true, "/sbin/sh": true, "/sbin/../bin/busybox": true, "/bin/nope": false, "/etc/passwd": false} {
		if got := existsInLayers(layers, p); got != want {
			t.Errorf("existsInLayers(%s) = %v, want %v", p, got, want)
		}
	}
	u, err := resolveUser(layers, "root", "")
	if err != nil || u.UID != 0 {
		t.Fatalf("resolveUser: %+v %v", u, err)
	}
	if _, err := resolveUser(layers, "ghost", ""); err == nil {
		t.Fatal("resolved a user the image lacks")
	}
}

func TestParsePrivateUsers(t *testing.T) {
	for in, want := range map[string]string{
		"100000":        "0:100000:65536",
		"100000:70000":  "0:100000:70000",
		"100000:1000":   "ID 65534 (nobody, whom the pod's init runs as) is not mapped",
		"0":             "maps the host's root",
		"x":             "want HOSTID[:SIZE]",
		"100000:0":      "SIZE is a count",
		"100000:-1":     "SIZE is a count",
		"4294967000":    "goes past the last ID",
		"100000:65536:": "SIZE is a count",
	} {
		u, err := ParsePrivateUsers(in)
		got := ""
		if err != nil {
			got = err.Error()
		} else {
			m := u.UIDMappings[0]
			got = fmt.Sprintf("%d:%d:%d", m.ContainerID, m.HostID, m.Size)
			if len(u.GIDMappings) != 1 || u.GIDMappings[0] != m {
				t.Errorf("%s: gid mappings %v", in, u.GIDMappings)
			}
		}
		if !strings.Contains(got, want) {
			t.Errorf("ParsePrivateUsers(%q) = %q, want %q", in, got, want)
		}
	}
}
