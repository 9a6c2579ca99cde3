package pod

import (
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestFlyAndInteractivePodsHaveOneApp(t *testing.T) {
	app := func(name string) App {
		return App{Name: name, Layers: []string{"/l"}, Process: specs.Process{Args: []string{"/bin/true"}}}
	}
	for _, c := range []struct {
		m    Manifest
		want string
	}{
		{Manifest{Flavor: FlavorFly, Apps: []App{app("a")}}, ""},
		{Manifest{Flavor: FlavorFly, Apps: []App{app("a"), app("b")}}, "a fly pod runs one app"},
		{Manifest{Interactive: true, Apps: []App{app("a")}}, ""},
		{Manifest{Interactive: true, Apps: []App{app("a"), app("b")}}, "an interactive pod runs one app"},
		{Manifest{Apps: []App{app("a"), app("b")}}, ""},
	} {
		c.m.Kind, c.m.Version = ManifestKind, ManifestVersion
		err := c.m.Validate()
		if (err == nil) != (c.want == "") || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("flavor %q interactive %v, %d apps: %v, want %q", c.m.Flavor, c.m.Interactive, len(c.m.Apps), err, c.want)
		}
	}
}

func TestMountPropagationIsChecked(t *testing.T) {
	for _, c := range []struct {
		mp   MountPoint
		want string
	}{
		{MountPoint{Volume: "v", Path: "/m"}, ""},
		{MountPoint{Volume: "v", Path: "/m", Propagation: PropagationSlave}, ""},
		{MountPoint{Volume: "v", Path: "/m", Propagation: PropagationShared}, ""},
		{MountPoint{Volume: "v", Path: "/m", Propagation: "shared"}, `unknown propagation "shared"`},
		{MountPoint{Volume: "v", Path: "/m", ReadOnly: true, RecursiveReadOnly: true, Propagation: PropagationPrivate}, ""},
		{MountPoint{Volume: "v", Path: "/m", ReadOnly: true, RecursiveReadOnly: true, Propagation: PropagationSlave}, "recursive read-only mount cannot be rslave"},
	} {
		m := Manifest{Kind: ManifestKind, Version: ManifestVersion,
			Volumes: []Volume{{Name: "v", Kind: VolumeHost, Source: "/srv"}},
			Apps:    []App{{Name: "a", Layers: []string{"/l"}, Process: specs.Process{Args: []string{"/bin/true"}}, Mounts: []MountPoint{c.mp}}}}
		err := m.Validate()
		if (err == nil) != (c.want == "") || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%+v: %v, want %q", c.mp, err, c.want)
		}
	}
}
