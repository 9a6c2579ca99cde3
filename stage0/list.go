package stage0

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/orbit-pods/orbit/pod"
	"github.com/orbit-pods/orbit/pod/state"
)

// The states `list` and `status` show. A pod in the run directory is
// "running" while its supervisor holds the lock, "dead" once it does not.
const (
	ShowEmbryo    = "embryo"
	ShowPreparing = "preparing"
	ShowPrepared  = "prepared"
	ShowRunning   = "running"
	ShowDead      = "dead"
	ShowExited    = "exited"
	ShowGarbage   = "garbage"
)

// PodInfo is what `list` and `status` tell of a pod.
type PodInfo struct {
	UUID    string    `json:"uuid"`
	State   string    `json:"state"`
	Created time.Time `json:"created,omitzero"`
	// Since is when the pod entered its state.
	Since time.Time `json:"since,omitzero"`
	Apps  []AppInfo `json:"apps"`
	// PID is the host PID of the pod's init while the pod runs.
	PID int `json:"pid,omitempty"`
	// Networks are the pod's CNI networks and its addresses on them.
	Networks []NetworkInfo `json:"networks,omitempty"`
}

// AppInfo is one app of a PodInfo.
type AppInfo struct {
	Name     string `json:"name"`
	Image    string `json:"image"`
	ImageID  string `json:"imageID"`
	ExitCode *int   `json:"exitCode,omitempty"`
	// OOMKilled says the kernel killed the app for exceeding its memory.
	OOMKilled bool `json:"oomKilled,omitempty"`
}

// Inspect reads what can be known of pd without disturbing it.
func Inspect(pd *state.Pod) (*PodInfo, error) {
	info := &PodInfo{UUID: pd.UUID}
	switch pd.State {
	case state.Embryo:
		info.State = ShowEmbryo
	case state.Prepare:
		info.State = ShowPreparing
	case state.Prepared:
		info.State = ShowPrepared
	case state.Run:
		locked, err := pd.IsLocked()
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		info.State = ShowDead
		if locked {
			info.State = ShowRunning
		}
	case state.ExitedGarbage:
		info.State = ShowExited
	case state.Garbage:
		info.State = ShowGarbage
	}
	info.Since, _ = pd.Since()
	dir := pd.Dir()
	m, err := readSummary(dir.ManifestFile())
	if errors.Is(err, fs.ErrNotExist) {
		return info, nil // an embryo has none yet
	}
	if err != nil {
		return nil, err
	}
	info.Created = m.Created
	for _, a := range m.Apps {
		ai := AppInfo{Name: a.Name, Image: a.Image.Name, ImageID: a.Image.ID.String()}
		if b, err := os.ReadFile(dir.ExitFile(a.Name)); err == nil {
			if c, err := pod.ParseExitStatus(b); err == nil {
				ai.ExitCode = &c
			}
		}
		if _, err := os.Stat(dir.OOMFile(a.Name)); err == nil {
			ai.OOMKilled = true
		}
		info.Apps = append(info.Apps, ai)
	}
	info.Networks = networks(dir)
	if info.State == ShowRunning {
		if b, err := os.ReadFile(dir.PIDFile()); err == nil {
			fmt.Sscan(string(b), &info.PID)
		}
	}
	return info, nil
}

// summary is the part of pod.json that list and status show: decoding
// only it keeps list fast with many pods.
type summary struct {
	Created time.Time `json:"created"`
	Apps    []struct {
		Name  string       `json:"name"`
		Image pod.ImageRef `json:"image"`
	} `json:"apps"`
}

func readSummary(path string) (*summary, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m summary
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("parse pod manifest %s: %w", path, err)
	}
	return &m, nil
}

// List inspects every pod, a few at a time. Pods that move or vanish while
// being read (a concurrent gc) are left out rather than failing the
// listing.
func (e *Env) List() ([]*PodInfo, error) {
	pods, err := e.Pods()
	if err != nil {
		return nil, err
	}
	all, err := pods.List()
	if err != nil {
		return nil, err
	}
	infos := make([]*PodInfo, len(all))
	errs := make([]error, len(all))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2*runtime.NumCPU())
	for i, pd := range all {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			infos[i], errs[i] = Inspect(pd)
		}()
	}
	wg.Wait()
	out := make([]*PodInfo, 0, len(all))
	for i, info := range infos {
		if err := errs[i]; err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, fmt.Errorf("pod %s: %w", all[i].UUID, err)
		}
		out = append(out, info)
	}
	return out, nil
}
