// Package stage0 is what the orbit command does: fetch and keep images,
// prepare pods from them, exec stage1 to run them, and list, inspect and
// collect pods afterwards. Every command is a short process working on the
// files under the data directory with locks; there is no daemon.
package stage0

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/orbit-pods/orbit/image/store"
	"github.com/orbit-pods/orbit/pod/state"
)

// DefaultStage1Path is the stage1 used when no configuration names one. The
// build sets it to where `make install` puts orbit-stage1.
var DefaultStage1Path = "/usr/local/libexec/orbit/orbit-stage1"

// Env is what every command works in: the data directory and configuration.
type Env struct {
	// DataDir holds images and pods (/var/lib/orbit).
	DataDir string
	// SystemConfig is the vendor configuration (/usr/lib/orbit), overridden
	// by LocalConfig (/etc/orbit).
	SystemConfig, LocalConfig string
	Debug                     bool
}

// Store opens the image store.
func (e *Env) Store() (*store.Store, error) {
	if err := e.makeDataDir(); err != nil {
		return nil, err
	}
	return store.Open(filepath.Join(e.DataDir, "images"))
}

// Pods opens the pods directory.
func (e *Env) Pods() (*state.Pods, error) {
	if err := e.makeDataDir(); err != nil {
		return nil, err
	}
	return state.Open(filepath.Join(e.DataDir, "pods"))
}

// makeDataDir creates the data directory when it is missing: 0711, so
// that a pod in a user namespace can pass through to its own directory
// (which lets only it through); what is below stays closed.
func (e *Env) makeDataDir() error {
	if err := os.MkdirAll(e.DataDir, 0o711); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	return nil
}

// Stage1Config is one file of a stage1.d directory: a named stage1 flavor
// and where its binary is.
type Stage1Config struct {
	Name string `json:"name"`
	Path string `json:"path"`
}

// ErrNoStage1 is returned when the stage1 asked for is not configured or
// not there.
var ErrNoStage1 = errors.New("stage1 not found")

// Stage1 finds the stage1 binary: path if given, else the flavor name from
// the local then the system configuration's stage1.d, else (for "default")
// the build's default.
func (e *Env) Stage1(name, path string) (string, error) {
	if name == "" {
		name = "default"
	}
	origin := "--stage1-path"
	if path == "" {
		for _, dir := range []string{e.LocalConfig, e.SystemConfig} {
			if dir == "" {
				continue
			}
			p, f, err := findStage1(filepath.Join(dir, "stage1.d"), name)
			if err != nil {
				return "", err
			}
			if p != "" {
				path, origin = p, f
				break
			}
		}
	}
	// orbit-stage1 runs the fly flavor too (pod.FlavorFly in the manifest).
	if path == "" && (name == "default" || name == "fly") {
		path, origin = DefaultStage1Path, "the build's default"
	}
	if path == "" {
		return "", fmt.Errorf("stage1 flavor %q is not configured in %s or %s: %w",
			name, filepath.Join(e.LocalConfig, "stage1.d"), filepath.Join(e.SystemConfig, "stage1.d"), ErrNoStage1)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		return "", fmt.Errorf("stage1 %q (from %s) is not an executable file: %w", path, origin, ErrNoStage1)
	}
	return path, nil
}

func findStage1(dir, name string) (path, file string, err error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return "", "", nil
	}
	if err != nil {
		return "", "", fmt.Errorf("read stage1 configuration: %w", err)
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		if filepath.Ext(e.Name()) == ".json" {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	for _, n := range names {
		f := filepath.Join(dir, n)
		b, err := os.ReadFile(f)
		if err != nil {
			return "", "", err
		}
		var c Stage1Config
		if err := json.Unmarshal(b, &c); err != nil {
			return "", "", fmt.Errorf("stage1 configuration %s: %w", f, err)
		}
		if c.Name == name {
			if c.Path == "" {
				return "", "", fmt.Errorf("stage1 configuration %s: no path", f)
			}
			return c.Path, f, nil
		}
	}
	return "", "", nil
}
