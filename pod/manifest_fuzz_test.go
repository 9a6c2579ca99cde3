package pod

import (
	"encoding/json"
	"path/filepath"
	"testing"
)

// A pod manifest comes from stage0, or from a user's --pod-manifest file:
// whatever the bytes, parsing and validation must not panic, and what
// validates must hold the promises stage1 relies on, and validate again
// after a round trip.
func FuzzManifest(f *testing.F) {
	f.Add([]byte(`{"kind":"OrbitPodManifest","version":1,"apps":[{"name":"a","layers":["/l"],"process":{"args":["/bin/true"],"cwd":"/"}}]}`))
	f.Add([]byte(`{"kind":"OrbitPodManifest","version":1,"volumes":[{"name":"v","kind":"empty"}],"apps":[{"name":"a","layers":["/l"],"mounts":[{"volume":"v","path":"/data"}],"process":{"args":["x"]}}]}`))
	f.Add([]byte(`{"kind":"OrbitPodManifest","version":1,"flavor":"fly","net":{"mode":"host"},"apps":[{"name":"a","layers":["/l"],"process":{"args":["x"]}},{"name":"b"}]}`))
	f.Add([]byte(`{"kind":"OrbitPodManifest","version":1,"stopTimeout":"1h","apps":[{"name":"../x","process":{"args":["x"]}}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Manifest
		if json.Unmarshal(b, &m) != nil || m.Validate() != nil {
			return
		}
		vols := map[string]bool{}
		for _, v := range m.Volumes {
			vols[v.Name] = true
		}
		for _, a := range m.Apps {
			if !ValidAppName(a.Name) || len(a.Process.Args) == 0 || len(a.Layers) == 0 {
				t.Fatalf("valid manifest with app %+v", a)
			}
			for _, mp := range a.Mounts {
				if !vols[mp.Volume] || !filepath.IsAbs(mp.Path) || filepath.Clean(mp.Path) != mp.Path {
					t.Fatalf("valid manifest with mount %+v", mp)
				}
			}
		}
		again, err := json.Marshal(&m)
		if err != nil {
			t.Fatalf("marshal a valid manifest: %v", err)
		}
		var m2 Manifest
		if err := json.Unmarshal(again, &m2); err != nil {
			t.Fatalf("re-read a valid manifest: %v", err)
		}
		if err := m2.Validate(); err != nil {
			t.Fatalf("a valid manifest fails after a round trip: %v\n%s", err, again)
		}
	})
}
