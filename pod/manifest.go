// Package pod describes an Orbit pod as plain data: the runtime pod manifest
// (pod.json) that stage0 writes and stage1 reads, and the layout of a pod's
// directory. Nothing here acts on a pod; stage0 and stage1 do, and pod/state
// moves pod directories between their lifecycle states.
//
// The manifest is the stage0/stage1 boundary (see docs/stage1-abi.md): stage0
// resolves images, users and flags into it; stage1 needs nothing else to build
// and run the pod.
package pod

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"time"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ManifestKind and ManifestVersion identify pod.json; stage1 refuses a
// manifest of a version it does not know.
const (
	ManifestKind    = "OrbitPodManifest"
	ManifestVersion = 1
)

// Manifest is the runtime pod manifest, pod.json in the pod directory.
type Manifest struct {
	Kind    string    `json:"kind"`
	Version int       `json:"version"`
	UUID    string    `json:"uuid"`
	Created time.Time `json:"created"`
	// Stage1 is the stage1 binary that runs the pod; gc calls it too.
	Stage1 string `json:"stage1"`
	// Hostname of the pod's UTS namespace.
	Hostname string `json:"hostname"`
	Apps     []App  `json:"apps"`
	// StopTimeout is how long stage1 waits after forwarding SIGTERM before it
	// kills what is left.
	StopTimeout Duration          `json:"stopTimeout"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// App is one application of a pod: an image, the layers its root filesystem
// is made of, and the process to run in it.
type App struct {
	Name  string   `json:"name"`
	Image ImageRef `json:"image"`
	// Layers are the directories of the image's extracted layers, lowest
	// first; stage1 stacks them as overlay lowerdirs.
	Layers []string `json:"layers"`
	// Process is what runs, in the runtime-spec's own terms; User is numeric,
	// resolved by stage0 against the image.
	Process specs.Process `json:"process"`
}

// ImageRef names the image an app was made from.
type ImageRef struct {
	Name string        `json:"name"`
	ID   digest.Digest `json:"id"`
}

// Duration is a time.Duration that reads and writes as a Go duration string.
type Duration time.Duration

// MarshalJSON writes d as "10s".
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads "10s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

var appNameRE = regexp.MustCompile(`^[a-z0-9]+([-.][a-z0-9]+)*$`)

// ValidAppName reports whether name can name an app: it becomes a directory,
// a cgroup and a libcontainer ID, so it is kept to the appc AC-Name alphabet.
func ValidAppName(name string) bool {
	return len(name) <= 64 && appNameRE.MatchString(name)
}

// Validate checks what stage1 relies on.
func (m *Manifest) Validate() error {
	if m.Kind != ManifestKind {
		return fmt.Errorf("pod manifest: kind %q, want %q", m.Kind, ManifestKind)
	}
	if m.Version != ManifestVersion {
		return fmt.Errorf("pod manifest: version %d not supported (this stage1 reads version %d)", m.Version, ManifestVersion)
	}
	if len(m.Apps) == 0 {
		return errors.New("pod manifest: no apps")
	}
	seen := map[string]bool{}
	for _, a := range m.Apps {
		if !ValidAppName(a.Name) {
			return fmt.Errorf("pod manifest: invalid app name %q", a.Name)
		}
		if seen[a.Name] {
			return fmt.Errorf("pod manifest: app name %q used twice", a.Name)
		}
		seen[a.Name] = true
		if len(a.Process.Args) == 0 {
			return fmt.Errorf("pod manifest: app %q has nothing to execute", a.Name)
		}
		if len(a.Layers) == 0 {
			return fmt.Errorf("pod manifest: app %q has no layers", a.Name)
		}
	}
	return nil
}

// ReadManifest reads and validates pod.json at path.
func ReadManifest(path string) (*Manifest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("parse pod manifest %s: %w", path, err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}
