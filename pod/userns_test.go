package pod

import (
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestUserNamespaceMappingsAreChecked(t *testing.T) {
	m := func(c, h, n uint32) specs.LinuxIDMapping {
		return specs.LinuxIDMapping{ContainerID: c, HostID: h, Size: n}
	}
	for _, c := range []struct {
		ms   []specs.LinuxIDMapping
		want string
	}{
		{[]specs.LinuxIDMapping{m(0, 100000, 65536)}, ""},
		{[]specs.LinuxIDMapping{m(0, 100000, 1000), m(1000, 300000, 65000)}, ""},
		{[]specs.LinuxIDMapping{m(0, 100000, 1000)}, "ID 65534 (nobody, whom the pod's init runs as) is not mapped"},
		{[]specs.LinuxIDMapping{m(0, 0, 65536)}, "maps the host's root"},
		{[]specs.LinuxIDMapping{m(0, 100000, 1000), m(1000, 0, 65000)}, "maps the host's root"},
		{nil, "none given"},
		{[]specs.LinuxIDMapping{m(0, 100000, 0)}, "maps no ID"},
		{[]specs.LinuxIDMapping{m(1, 100000, 10)}, "ID 0 (the pod's root) is not mapped"},
		{[]specs.LinuxIDMapping{m(0, 100000, 1000), m(500, 300000, 65535)}, "overlap"},
		{[]specs.LinuxIDMapping{m(0, 100000, 1000), m(1000, 100500, 65535)}, "overlap"},
		{[]specs.LinuxIDMapping{m(0, 4294967000, 1000)}, "goes past the last ID"},
		{make([]specs.LinuxIDMapping, 341), "the kernel takes at most 340"},
	} {
		u := UserNamespace{UIDMappings: c.ms, GIDMappings: []specs.LinuxIDMapping{m(0, 100000, 65536)}}
		err := u.Validate()
		if (err == nil) != (c.want == "") || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%v: %v, want %q", c.ms, err, c.want)
		}
	}
	ms := []specs.LinuxIDMapping{m(0, 100000, 1000), m(1000, 300000, 10)}
	for id, want := range map[uint32]uint32{0: 100000, 999: 100999, 1000: 300000, 1009: 300009} {
		if got, ok := MapID(ms, id); !ok || got != want {
			t.Errorf("MapID(%d) = %d, %v; want %d", id, got, ok, want)
		}
	}
	if _, ok := MapID(ms, 1010); ok {
		t.Error("MapID(1010) mapped an ID past the mappings")
	}
}

func TestUserNamespacePodsOwnTheirNamespaces(t *testing.T) {
	ms := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	app := func(uid uint32, noOverlay bool) App {
		return App{Name: "a", Layers: []string{"/l"}, NoOverlay: noOverlay,
			Process: specs.Process{Args: []string{"/bin/true"}, User: specs.User{UID: uid, GID: 0}}}
	}
	for _, c := range []struct {
		m    Manifest
		want string
	}{
		{Manifest{Apps: []App{app(1000, false)}}, ""},
		{Manifest{Apps: []App{app(70000, false)}}, "user 70000 is not mapped"},
		{Manifest{Apps: []App{app(0, true)}}, "needs an overlay root"},
		{Manifest{Flavor: FlavorFly, Apps: []App{app(0, false)}}, "a fly pod runs in the host's namespaces"},
		{Manifest{Net: &Net{Mode: NetHost}, Apps: []App{app(0, false)}}, "not the host's network"},
		{Manifest{HostPID: true, Apps: []App{app(0, false)}}, "PID and IPC namespaces of its own"},
	} {
		c.m.Kind, c.m.Version = ManifestKind, ManifestVersion
		c.m.UserNamespace = &UserNamespace{UIDMappings: ms, GIDMappings: ms}
		err := c.m.Validate()
		if (err == nil) != (c.want == "") || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%+v: %v, want %q", c.m, err, c.want)
		}
	}
	// An idmapped mount needs a user namespace to map with.
	m := Manifest{Kind: ManifestKind, Version: ManifestVersion, Volumes: []Volume{{Name: "v", Kind: VolumeEmpty}},
		Apps: []App{app(0, false)}}
	m.Apps[0].Mounts = []MountPoint{{Volume: "v", Path: "/v", IDMapped: true}}
	if err := m.Validate(); err == nil || !strings.Contains(err.Error(), "the pod has none") {
		t.Errorf("idmapped mount without a user namespace: %v", err)
	}
}

func TestIPCSysctl(t *testing.T) {
	if !IPCSysctl("kernel.shmmax") || !IPCSysctl("fs/mqueue/msg_max") || IPCSysctl("kernel.hostname") || IPCSysctl("net.ipv4.ip_forward") {
		t.Error("IPCSysctl tells IPC sysctls wrongly")
	}
}
