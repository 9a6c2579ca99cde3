package cri

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/orbit-pods/orbit/pod"
	"github.com/orbit-pods/orbit/pod/state"
)

// What the CRI knows of a pod and its apps that Orbit's own records do
// not hold lives in the pod directory, under cri/: sandbox.json for the
// sandbox, containers/<app>.json for each container.

func criDir(d pod.Dir) string { return filepath.Join(string(d), "cri") }

func sandboxFile(d pod.Dir) string { return filepath.Join(criDir(d), "sandbox.json") }

func containerFile(d pod.Dir, app string) string {
	return filepath.Join(criDir(d), "containers", app+".json")
}

// supervisorLog is where the pod's supervisor's own output goes.
func supervisorLog(d pod.Dir) string { return filepath.Join(criDir(d), "supervisor.log") }

type sandboxRecord struct {
	Config         json.RawMessage `json:"config"`
	RuntimeHandler string          `json:"runtimeHandler,omitempty"`
	Created        time.Time       `json:"created"`
}

type containerRecord struct {
	Config  json.RawMessage `json:"config"`
	Image   string          `json:"image"`
	ImageID string          `json:"imageID"`
	LogPath string          `json:"logPath,omitempty"`
	Created time.Time       `json:"created"`
	// The app's user as stage0 resolved it.
	UID    uint32   `json:"uid"`
	GID    uint32   `json:"gid"`
	Groups []uint32 `json:"groups,omitempty"`
}

func writeJSON(file string, v any) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := os.WriteFile(file+".tmp", b, 0o644); err != nil {
		return err
	}
	return os.Rename(file+".tmp", file)
}

func writeSandboxRecord(d pod.Dir, cfg *runtimeapi.PodSandboxConfig, handler string) error {
	b, err := protojson.Marshal(cfg)
	if err != nil {
		return err
	}
	return writeJSON(sandboxFile(d), &sandboxRecord{Config: b, RuntimeHandler: handler, Created: time.Now().UTC()})
}

// sandbox is one pod sandbox as read from its pod directory.
type sandbox struct {
	pd      *state.Pod
	rec     sandboxRecord
	cfg     *runtimeapi.PodSandboxConfig
	running bool // its supervisor runs and its init is up
}

func readSandbox(pd *state.Pod) (*sandbox, error) {
	b, err := os.ReadFile(sandboxFile(pd.Dir()))
	if err != nil {
		return nil, err
	}
	sb := &sandbox{pd: pd}
	if err := json.Unmarshal(b, &sb.rec); err != nil {
		return nil, fmt.Errorf("sandbox %s record: %w", pd.UUID, err)
	}
	sb.cfg = &runtimeapi.PodSandboxConfig{}
	if err := protojson.Unmarshal(sb.rec.Config, sb.cfg); err != nil {
		return nil, fmt.Errorf("sandbox %s config: %w", pd.UUID, err)
	}
	if pd.State == state.Run {
		locked, _ := pd.IsLocked()
		_, perr := os.Stat(pd.Dir().PIDFile())
		sb.running = locked && perr == nil
	}
	return sb, nil
}

// sandboxes are every pod with a sandbox record, in any state.
func (s *Server) sandboxes() ([]*sandbox, error) {
	pods, err := s.cfg.Env.Pods()
	if err != nil {
		return nil, err
	}
	pds, err := pods.List()
	if err != nil {
		return nil, err
	}
	var out []*sandbox
	for _, pd := range pds {
		sb, err := readSandbox(pd)
		if err != nil {
			continue // not a CRI pod, or moved or removed meanwhile
		}
		out = append(out, sb)
	}
	return out, nil
}

// findSandbox finds the sandbox of an ID (a UUID or a prefix of one).
func (s *Server) findSandbox(id string) (*sandbox, error) {
	if id == "" {
		return nil, invalid("no pod sandbox ID given")
	}
	pd, err := s.cfg.Env.FindPod(id)
	if errors.Is(err, state.ErrNotFound) {
		return nil, notFound("pod sandbox %q not found", id)
	}
	if err != nil {
		return nil, grpcError("find pod sandbox "+id, err)
	}
	sb, err := readSandbox(pd)
	if errors.Is(err, os.ErrNotExist) {
		return nil, notFound("pod sandbox %q not found (pod %s is not a CRI sandbox)", id, pd.UUID)
	}
	if err != nil {
		return nil, grpcError("read pod sandbox "+id, err)
	}
	return sb, nil
}

// A container's ID is its pod's UUID without dashes followed by its app
// name (32 random hex digits), so that the pod is found from the ID alone.
func containerID(podUUID, app string) string {
	return strings.ReplaceAll(podUUID, "-", "") + app
}

// splitContainerID returns the pod UUID and app name of a full container ID.
func splitContainerID(id string) (podUUID, app string, ok bool) {
	if len(id) != 64 {
		return "", "", false
	}
	h := id[:32]
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:], id[32:], true
}

// container is one container as read from its pod directory.
type container struct {
	sb  *sandbox
	app string
	rec containerRecord
	cfg *runtimeapi.ContainerConfig
	st  *pod.AppStatus
}

func (c *container) id() string { return containerID(c.sb.pd.UUID, c.app) }

func readContainer(sb *sandbox, app string) (*container, error) {
	b, err := os.ReadFile(containerFile(sb.pd.Dir(), app))
	if err != nil {
		return nil, err
	}
	c := &container{sb: sb, app: app}
	if err := json.Unmarshal(b, &c.rec); err != nil {
		return nil, fmt.Errorf("container %s record: %w", app, err)
	}
	c.cfg = &runtimeapi.ContainerConfig{}
	if err := protojson.Unmarshal(c.rec.Config, c.cfg); err != nil {
		return nil, fmt.Errorf("container %s config: %w", app, err)
	}
	st, err := pod.ReadAppStatus(sb.pd.Dir(), app)
	if err != nil {
		// Added by stage1 but not recorded yet, or its record lost.
		st = &pod.AppStatus{Name: app, State: pod.AppCreated, Created: c.rec.Created}
	}
	if !sb.running && st.State != pod.AppExited {
		// The pod is gone: whatever ran in it is not running.
		code := -1
		if b, err := os.ReadFile(sb.pd.Dir().ExitFile(app)); err == nil {
			if n, err := pod.ParseExitStatus(b); err == nil {
				code = n
			}
		}
		if st.State == pod.AppRunning {
			st.State, st.ExitCode, st.Reason = pod.AppExited, code, "PodStopped"
		}
	}
	c.st = st
	return c, nil
}

// containersOf are the containers of a sandbox.
func containersOf(sb *sandbox) ([]*container, error) {
	ents, err := os.ReadDir(filepath.Join(criDir(sb.pd.Dir()), "containers"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*container
	for _, e := range ents {
		app, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			continue
		}
		c, err := readContainer(sb, app)
		if err != nil {
			continue
		}
		out = append(out, c)
	}
	return out, nil
}

// findContainer finds a container by its ID or a unique prefix of it.
func (s *Server) findContainer(id string) (*container, error) {
	if id == "" {
		return nil, invalid("no container ID given")
	}
	if uuid, app, ok := splitContainerID(id); ok {
		sb, err := s.findSandbox(uuid)
		if err == nil {
			c, err := readContainer(sb, app)
			if err == nil {
				return c, nil
			}
		}
		return nil, notFound("container %q not found", id)
	}
	sbs, err := s.sandboxes()
	if err != nil {
		return nil, grpcError("list pod sandboxes", err)
	}
	var found *container
	for _, sb := range sbs {
		cs, _ := containersOf(sb)
		for _, c := range cs {
			if strings.HasPrefix(c.id(), id) {
				if found != nil {
					return nil, invalid("container ID prefix %q is ambiguous", id)
				}
				found = c
			}
		}
	}
	if found == nil {
		return nil, notFound("container %q not found", id)
	}
	return found, nil
}
