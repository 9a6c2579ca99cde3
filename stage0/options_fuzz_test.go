package stage0

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/orbit-pods/orbit/pod"
)

// What the --volume and --mount parsers accept, the pod manifest's
// validation accepts too: a flag never makes a pod that stage1 refuses.
func FuzzVolumeAndMountFlags(f *testing.F) {
	f.Add("data,kind=empty,mode=0750,uid=1", "volume=data,target=/var/lib/x")
	f.Add("etc,kind=host,source=/etc,readOnly=true", "volume=etc,target=/host/etc,readOnly=true")
	f.Add("x,kind=host,source=relative", "volume=x,target=/a/../../b")
	f.Add("x,kind=empty,source=/tmp", "target=/,volume=")
	f.Fuzz(func(t *testing.T, vol, mount string) {
		v, err := ParseVolume(vol)
		if err != nil {
			return
		}
		mp, err := ParseMount(mount)
		if err != nil {
			return
		}
		mp.Volume = v.Name
		m := pod.Manifest{
			Kind:    pod.ManifestKind,
			Version: pod.ManifestVersion,
			Volumes: []pod.Volume{v},
			Apps: []pod.App{{
				Name:    "app",
				Layers:  []string{"/layer"},
				Process: specs.Process{Args: []string{"/bin/true"}},
				Mounts:  []pod.MountPoint{mp},
			}},
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("--volume %q --mount %q parse, but the manifest is refused: %v", vol, mount, err)
		}
	})
}
