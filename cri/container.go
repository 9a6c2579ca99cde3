package cri

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moby/sys/capability"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/orbit-pods/orbit/image/store"
	"github.com/orbit-pods/orbit/pod"
	"github.com/orbit-pods/orbit/stage0"
)

func newAppName() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// capName is a capability as Orbit names it.
func capName(c string) string {
	c = strings.ToUpper(c)
	if !strings.HasPrefix(c, "CAP_") {
		c = "CAP_" + c
	}
	return c
}

// allCaps are the capabilities "ALL" grants: those in this process's
// bounding set, which the pod's supervisor has too (asking for more fails
// the start).
var allCaps = sync.OnceValue(func() []string {
	var out []string
	c, err := capability.NewPid2(0)
	if err == nil {
		err = c.Load()
	}
	for _, cp := range capability.ListKnown() {
		if err == nil && !c.Get(capability.BOUNDING, cp) {
			continue
		}
		out = append(out, "CAP_"+strings.ToUpper(cp.String()))
	}
	return out
})

// capabilities are an app's capabilities from the CRI's security context:
// the default set with what it adds and drops, or every one for a
// privileged container. nil keeps the default.
func capabilities(sc *runtimeapi.LinuxContainerSecurityContext) []string {
	if sc.GetPrivileged() {
		return allCaps()
	}
	c := sc.GetCapabilities()
	if c == nil || len(c.AddCapabilities)+len(c.DropCapabilities)+len(c.AddAmbientCapabilities) == 0 {
		return nil
	}
	set := slices.Clone(pod.DefaultCapabilities)
	for _, a := range c.AddCapabilities {
		if strings.EqualFold(a, "ALL") {
			set = slices.Clone(allCaps())
			continue
		}
		if n := capName(a); !slices.Contains(set, n) {
			set = append(set, n)
		}
	}
	for _, d := range c.DropCapabilities {
		if strings.EqualFold(d, "ALL") {
			set = []string{}
			continue
		}
		n := capName(d)
		set = slices.DeleteFunc(set, func(x string) bool { return x == n })
	}
	return set
}

// seccompProfile is an app's seccomp filter from the CRI's: none when
// unset or unconfined (the CRI's default) and for a privileged container,
// Orbit's default for RuntimeDefault, a profile file's (the runtime-spec
// format) for Localhost.
func seccompProfile(sc *runtimeapi.LinuxContainerSecurityContext) (*specs.LinuxSeccomp, error) {
	p := sc.GetSeccomp()
	switch {
	case sc.GetPrivileged(), p == nil, p.ProfileType == runtimeapi.SecurityProfile_Unconfined:
		return &specs.LinuxSeccomp{}, nil
	case p.ProfileType == runtimeapi.SecurityProfile_RuntimeDefault:
		return nil, nil
	}
	b, err := os.ReadFile(p.LocalhostRef)
	if err != nil {
		return nil, invalid("container config: seccomp profile: %v", err)
	}
	var f specs.LinuxSeccomp
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, invalid("container config: seccomp profile %s: %v", p.LocalhostRef, err)
	}
	if f.DefaultAction == "" {
		return nil, invalid("container config: seccomp profile %s has no defaultAction", p.LocalhostRef)
	}
	return &f, nil
}

// checkAppArmor refuses an AppArmor profile by name: orbit-cri applies
// none, and a profile asked for must not silently be left out.
// RuntimeDefault and Unconfined are taken, and mean no profile.
func checkAppArmor(what string, p *runtimeapi.SecurityProfile, deprecated string) error {
	name := ""
	switch {
	case p.GetProfileType() == runtimeapi.SecurityProfile_Localhost:
		name = p.GetLocalhostRef()
	case strings.HasPrefix(deprecated, "localhost/"):
		name = strings.TrimPrefix(deprecated, "localhost/")
	default:
		return nil
	}
	return status.Errorf(codes.Unimplemented, "%s: AppArmor profile %q: orbit-cri applies no AppArmor profiles (RuntimeDefault and Unconfined are taken, and mean none)", what, name)
}

// CreateContainer adds an app to the sandbox's pod, not started.
func (s *Server) CreateContainer(ctx context.Context, req *runtimeapi.CreateContainerRequest) (*runtimeapi.CreateContainerResponse, error) {
	cfg := req.Config
	if cfg == nil || cfg.Metadata == nil || cfg.Metadata.Name == "" {
		return nil, invalid("container config: metadata with a name is required")
	}
	if cfg.Image == nil || cfg.Image.Image == "" {
		return nil, invalid("container config: no image given")
	}
	sb, err := s.findSandbox(req.PodSandboxId)
	if err != nil {
		return nil, err
	}
	if !sb.running {
		return nil, status.Errorf(codes.FailedPrecondition, "pod sandbox %s is not ready", sb.pd.UUID)
	}
	lx := cfg.GetLinux()
	if r := lx.GetResources(); r != nil {
		if err := checkResources("container", r.CpuPeriod, r.CpuQuota, r.CpuShares, r.MemoryLimitInBytes); err != nil {
			return nil, err
		}
	}
	st, err := s.cfg.Env.Store()
	if err != nil {
		return nil, grpcError("open the image store", err)
	}
	img, err := resolveImage(st, cfg.Image.Image)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound("image %q is not present: pull it first", cfg.Image.Image)
	}
	if err != nil {
		return nil, grpcError("image "+cfg.Image.Image, err)
	}
	app := newAppName()
	o := stage0.AppOptions{Image: cfg.Image.Image, Name: app, WorkingDir: cfg.WorkingDir}
	switch {
	case len(cfg.Command) > 0:
		o.Exec = cfg.Command[0]
		o.Args = append(slices.Clone(cfg.Command[1:]), cfg.Args...)
	case len(cfg.Args) > 0:
		o.Args, o.HasArgs = cfg.Args, true
	}
	sc := lx.GetSecurityContext()
	switch {
	case sc.GetRunAsUser() != nil:
		o.User = strconv.FormatInt(sc.GetRunAsUser().Value, 10)
	case sc.GetRunAsUsername() != "":
		o.User = sc.GetRunAsUsername()
	}
	if g := sc.GetRunAsGroup(); g != nil {
		if o.User == "" {
			return nil, invalid("container config: run_as_group needs run_as_user or run_as_username")
		}
		o.Group = strconv.FormatInt(g.Value, 10)
	}
	ao := stage0.AddOptions{MaskedPaths: sc.GetMaskedPaths(), ReadonlyPaths: sc.GetReadonlyPaths(), Stdin: cfg.Stdin, StdinOnce: cfg.StdinOnce}
	if ao.OwnPIDNamespace, err = pidNamespace(sb.cfg, sc.GetNamespaceOptions()); err != nil {
		return nil, err
	}
	if err := checkContainerUserNamespace(sb.cfg, sc.GetNamespaceOptions()); err != nil {
		return nil, err
	}
	//lint:ignore SA1019 an older kubelet names a profile only there
	if err := checkAppArmor("container config", sc.GetApparmor(), sc.GetApparmorProfile()); err != nil {
		return nil, err
	}
	if sc.GetPrivileged() {
		ao.MaskedPaths, ao.ReadonlyPaths = []string{}, []string{}
	}
	if o.Seccomp, err = seccompProfile(sc); err != nil {
		return nil, err
	}
	nnp := sc.GetNoNewPrivs()
	ao.NoNewPrivileges = &nnp
	for _, g := range sc.GetSupplementalGroups() {
		if g < 0 || g > 1<<32-1 {
			return nil, invalid("container config: supplemental group %d out of range", g)
		}
		ao.SupplementalGroups = append(ao.SupplementalGroups, uint32(g))
	}
	ao.StrictGroups = sc.GetSupplementalGroupsPolicy() == runtimeapi.SupplementalGroupsPolicy_Strict
	o.ReadOnlyRootfs = sc.GetReadonlyRootfs()
	if caps := capabilities(sc); caps != nil {
		o.CapsRetain = caps
	}
	if r := lx.GetResources(); r != nil {
		o.Memory = r.MemoryLimitInBytes
		if r.CpuQuota > 0 {
			o.CPUQuota, o.CPUPeriod = r.CpuQuota, uint64(r.CpuPeriod)
			if o.CPUPeriod == 0 {
				o.CPUPeriod = 100000
			}
		}
	}
	var env []string
	for _, kv := range cfg.Envs {
		if kv.Key == "" {
			return nil, invalid("container config: environment variable with no name")
		}
		env = append(env, kv.Key+"="+kv.Value)
	}
	var vols []pod.Volume
	for i, m := range cfg.Mounts {
		if !filepath.IsAbs(m.HostPath) || !filepath.IsAbs(m.ContainerPath) {
			return nil, invalid("container config: mount %q -> %q: both paths must be absolute", m.HostPath, m.ContainerPath)
		}
		if _, err := os.Stat(m.HostPath); err != nil {
			return nil, invalid("container config: mount source %s: %v", m.HostPath, err)
		}
		v := pod.Volume{Name: fmt.Sprintf("v%s-%d", app[:12], i), Kind: pod.VolumeHost, Source: m.HostPath, ReadOnly: m.Readonly}
		vols = append(vols, v)
		if m.RecursiveReadOnly && (!m.Readonly || m.Propagation != runtimeapi.MountPropagation_PROPAGATION_PRIVATE) {
			return nil, invalid("container config: mount %s: recursive read-only needs a read-only mount with private propagation", m.ContainerPath)
		}
		mp := pod.MountPoint{Volume: v.Name, Path: m.ContainerPath, ReadOnly: m.Readonly, RecursiveReadOnly: m.RecursiveReadOnly}
		if mp.IDMapped, err = mountIDMapped(sb.cfg, m); err != nil {
			return nil, err
		}
		switch m.Propagation {
		case runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER:
			mp.Propagation = pod.PropagationSlave
		case runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL:
			mp.Propagation = pod.PropagationShared
		case runtimeapi.MountPropagation_PROPAGATION_PRIVATE:
		default:
			return nil, invalid("container config: mount %s: unknown propagation %v", m.ContainerPath, m.Propagation)
		}
		o.Mounts = append(o.Mounts, mp)
	}
	var logPath string
	if cfg.LogPath != "" {
		if dir := sb.cfg.LogDirectory; dir != "" {
			logPath = filepath.Join(dir, cfg.LogPath)
		} else if filepath.IsAbs(cfg.LogPath) {
			logPath = cfg.LogPath
		}
	}
	ao.Env, ao.Volumes, ao.LogPath = env, vols, logPath
	b, err := protojson.Marshal(cfg)
	if err != nil {
		return nil, grpcError("container config", err)
	}
	// The record comes first, so that an app is never in the pod without
	// one; it goes if the app cannot be added.
	rec := &containerRecord{Config: b, Image: cfg.Image.Image, ImageID: img.ID.String(), LogPath: logPath, Created: time.Now().UTC()}
	if err := writeJSON(containerFile(sb.pd.Dir(), app), rec); err != nil {
		return nil, grpcError("record container", err)
	}
	m, err := pod.ReadManifest(sb.pd.Dir().ManifestFile())
	var added *pod.App
	if err == nil {
		added, err = s.cfg.Env.AddAppImage(ctx, sb.pd, m, st, img, o, ao)
	}
	if err != nil {
		_ = os.Remove(containerFile(sb.pd.Dir(), app))
		return nil, status.Errorf(codes.InvalidArgument, "create container %s: %v", cfg.Metadata.Name, err)
	}
	u := added.Process.User
	rec.UID, rec.GID, rec.Groups = u.UID, u.GID, u.AdditionalGids
	if err := writeJSON(containerFile(sb.pd.Dir(), app), rec); err != nil {
		return nil, grpcError("record container", err)
	}
	return &runtimeapi.CreateContainerResponse{ContainerId: containerID(sb.pd.UUID, app)}, nil
}

// StartContainer starts a created container.
func (s *Server) StartContainer(ctx context.Context, req *runtimeapi.StartContainerRequest) (*runtimeapi.StartContainerResponse, error) {
	c, err := s.findContainer(req.ContainerId)
	if err != nil {
		return nil, err
	}
	if !c.sb.running {
		return nil, status.Errorf(codes.FailedPrecondition, "container %s: its pod sandbox is not ready", req.ContainerId)
	}
	if c.rec.LogPath != "" {
		if err := os.MkdirAll(filepath.Dir(c.rec.LogPath), 0o755); err != nil {
			return nil, grpcError("container log directory", err)
		}
	}
	if err := s.cfg.Env.AppCommand(ctx, c.sb.pd.UUID, &pod.ControlRequest{Op: pod.OpStart, Name: c.app}); err != nil {
		return nil, status.Errorf(codes.Unknown, "start container %s: %v", c.id(), err)
	}
	return &runtimeapi.StartContainerResponse{}, nil
}

// StopContainer stops a running container: SIGTERM, SIGKILL after the
// timeout. A container that does not run is left as it is.
func (s *Server) StopContainer(ctx context.Context, req *runtimeapi.StopContainerRequest) (*runtimeapi.StopContainerResponse, error) {
	c, err := s.findContainer(req.ContainerId)
	if status.Code(err) == codes.NotFound {
		return &runtimeapi.StopContainerResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	if !c.sb.running || c.st.State != pod.AppRunning {
		return &runtimeapi.StopContainerResponse{}, nil
	}
	t := time.Duration(req.Timeout) * time.Second
	if err := s.cfg.Env.AppCommand(ctx, c.sb.pd.UUID, &pod.ControlRequest{Op: pod.OpStop, Name: c.app, Timeout: pod.Duration(t)}); err != nil {
		return nil, grpcError("stop container "+c.id(), err)
	}
	return &runtimeapi.StopContainerResponse{}, nil
}

// RemoveContainer removes a container, killing it if it runs. Removing an
// unknown container succeeds.
func (s *Server) RemoveContainer(ctx context.Context, req *runtimeapi.RemoveContainerRequest) (*runtimeapi.RemoveContainerResponse, error) {
	c, err := s.findContainer(req.ContainerId)
	if status.Code(err) == codes.NotFound {
		return &runtimeapi.RemoveContainerResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	if c.sb.running {
		if err := s.cfg.Env.AppCommand(ctx, c.sb.pd.UUID, &pod.ControlRequest{Op: pod.OpRemove, Name: c.app}); err != nil {
			return nil, grpcError("remove container "+c.id(), err)
		}
	}
	if err := os.Remove(containerFile(c.sb.pd.Dir(), c.app)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, grpcError("remove container record", err)
	}
	return &runtimeapi.RemoveContainerResponse{}, nil
}

func (c *container) state() runtimeapi.ContainerState {
	switch c.st.State {
	case pod.AppCreated:
		return runtimeapi.ContainerState_CONTAINER_CREATED
	case pod.AppRunning:
		return runtimeapi.ContainerState_CONTAINER_RUNNING
	case pod.AppExited:
		return runtimeapi.ContainerState_CONTAINER_EXITED
	}
	return runtimeapi.ContainerState_CONTAINER_UNKNOWN
}

func (c *container) container() *runtimeapi.Container {
	return &runtimeapi.Container{
		Id:           c.id(),
		PodSandboxId: c.sb.pd.UUID,
		Metadata:     c.cfg.Metadata,
		Image:        &runtimeapi.ImageSpec{Image: c.rec.Image},
		ImageRef:     c.rec.ImageID,
		ImageId:      c.rec.ImageID,
		State:        c.state(),
		CreatedAt:    nanos(c.rec.Created),
		Labels:       c.cfg.Labels,
		Annotations:  c.cfg.Annotations,
	}
}

// ListContainers lists containers, filtered as asked.
func (s *Server) ListContainers(ctx context.Context, req *runtimeapi.ListContainersRequest) (*runtimeapi.ListContainersResponse, error) {
	sbs, err := s.sandboxes()
	if err != nil {
		return nil, grpcError("list pod sandboxes", err)
	}
	f := req.Filter
	out := []*runtimeapi.Container{}
	for _, sb := range sbs {
		if f != nil && !matchID(sb.pd.UUID, f.PodSandboxId) {
			continue
		}
		cs, err := containersOf(sb)
		if err != nil {
			continue
		}
		for _, c := range cs {
			if f != nil {
				if !matchID(c.id(), f.Id) || !matchLabels(c.cfg.Labels, f.LabelSelector) {
					continue
				}
				if f.State != nil && f.State.State != c.state() {
					continue
				}
			}
			out = append(out, c.container())
		}
	}
	return &runtimeapi.ListContainersResponse{Containers: out}, nil
}

// ContainerStatus reports one container.
func (s *Server) ContainerStatus(ctx context.Context, req *runtimeapi.ContainerStatusRequest) (*runtimeapi.ContainerStatusResponse, error) {
	c, err := s.findContainer(req.ContainerId)
	if err != nil {
		return nil, err
	}
	st := &runtimeapi.ContainerStatus{
		Id:          c.id(),
		Metadata:    c.cfg.Metadata,
		State:       c.state(),
		CreatedAt:   nanos(c.rec.Created),
		StartedAt:   nanos(c.st.Started),
		FinishedAt:  nanos(c.st.Finished),
		ExitCode:    int32(c.st.ExitCode),
		Image:       &runtimeapi.ImageSpec{Image: c.rec.Image},
		ImageRef:    c.rec.ImageID,
		ImageId:     c.rec.ImageID,
		Reason:      c.st.Reason,
		Labels:      c.cfg.Labels,
		Annotations: c.cfg.Annotations,
		Mounts:      c.cfg.Mounts,
		LogPath:     c.rec.LogPath,
		User:        &runtimeapi.ContainerUser{Linux: &runtimeapi.LinuxContainerUser{Uid: int64(c.rec.UID), Gid: int64(c.rec.GID)}},
	}
	groups := []int64{int64(c.rec.GID)}
	for _, g := range c.rec.Groups {
		if !slices.Contains(groups, int64(g)) {
			groups = append(groups, int64(g))
		}
	}
	slices.Sort(groups)
	st.User.Linux.SupplementalGroups = groups
	if c.st.State != pod.AppExited {
		st.ExitCode = 0
	}
	if r := c.cfg.GetLinux().GetResources(); r != nil {
		st.Resources = &runtimeapi.ContainerResources{Linux: r}
	}
	resp := &runtimeapi.ContainerStatusResponse{Status: st}
	if req.Verbose {
		resp.Info = map[string]string{"pid": strconv.Itoa(c.st.PID), "app": c.app, "podDir": string(c.sb.pd.Dir())}
	}
	return resp, nil
}

// UpdateContainerResources changes a running container's CPU and memory
// limits.
func (s *Server) UpdateContainerResources(ctx context.Context, req *runtimeapi.UpdateContainerResourcesRequest) (*runtimeapi.UpdateContainerResourcesResponse, error) {
	c, err := s.findContainer(req.ContainerId)
	if err != nil {
		return nil, err
	}
	r := req.Linux
	if r == nil {
		return &runtimeapi.UpdateContainerResourcesResponse{}, nil
	}
	if err := checkResources("container", r.CpuPeriod, r.CpuQuota, r.CpuShares, r.MemoryLimitInBytes); err != nil {
		return nil, err
	}
	if !c.sb.running || c.st.State != pod.AppRunning {
		return nil, status.Errorf(codes.FailedPrecondition, "container %s is not running", c.id())
	}
	u := &pod.LinuxResourcesUpdate{MemoryLimit: r.MemoryLimitInBytes, CPUShares: uint64(r.CpuShares), CPUQuota: r.CpuQuota, CPUPeriod: uint64(r.CpuPeriod)}
	if err := s.cfg.Env.AppCommand(ctx, c.sb.pd.UUID, &pod.ControlRequest{Op: pod.OpUpdate, Name: c.app, Resources: u}); err != nil {
		return nil, grpcError("update container "+c.id(), err)
	}
	// The container's recorded config carries the limits now in force.
	if c.cfg.Linux == nil {
		c.cfg.Linux = &runtimeapi.LinuxContainerConfig{}
	}
	c.cfg.Linux.Resources = r
	if b, err := protojson.Marshal(c.cfg); err == nil {
		c.rec.Config = b
		_ = writeJSON(containerFile(c.sb.pd.Dir(), c.app), &c.rec)
	}
	return &runtimeapi.UpdateContainerResourcesResponse{}, nil
}

// ReopenContainerLog has the container's supervisor reopen its log file,
// which the kubelet has just moved away to rotate it.
func (s *Server) ReopenContainerLog(ctx context.Context, req *runtimeapi.ReopenContainerLogRequest) (*runtimeapi.ReopenContainerLogResponse, error) {
	c, err := s.findContainer(req.ContainerId)
	if err != nil {
		return nil, err
	}
	if !c.sb.running || c.st.State != pod.AppRunning {
		return nil, status.Errorf(codes.FailedPrecondition, "container %s is not running", c.id())
	}
	if err := s.cfg.Env.AppCommand(ctx, c.sb.pd.UUID, &pod.ControlRequest{Op: pod.OpReopen, Name: c.app}); err != nil {
		return nil, grpcError("reopen log of container "+c.id(), err)
	}
	return &runtimeapi.ReopenContainerLogResponse{}, nil
}

// pidNamespace checks a container's namespace modes against its
// sandbox's and says whether it has a PID namespace of its own.
func pidNamespace(sb *runtimeapi.PodSandboxConfig, ns *runtimeapi.NamespaceOption) (bool, error) {
	sbNS := sb.GetLinux().GetSecurityContext().GetNamespaceOptions()
	hostPID := sbNS.GetPid() == runtimeapi.NamespaceMode_NODE
	own := false
	switch ns.GetPid() {
	case runtimeapi.NamespaceMode_TARGET:
		return false, status.Errorf(codes.Unimplemented, "container config: PID namespace mode TARGET (another container's) is not offered")
	case runtimeapi.NamespaceMode_NODE:
		if !hostPID {
			return false, invalid("container config: the node's PID namespace, in a sandbox that has its own")
		}
	case runtimeapi.NamespaceMode_CONTAINER:
		if hostPID {
			return false, invalid("container config: a PID namespace of its own, in a sandbox in the node's")
		}
		own = true
	default:
		if hostPID {
			return false, invalid("container config: the pod's PID namespace, in a sandbox in the node's")
		}
	}
	if (ns.GetIpc() == runtimeapi.NamespaceMode_NODE) != (sbNS.GetIpc() == runtimeapi.NamespaceMode_NODE) {
		return false, invalid("container config: IPC namespace mode %v, its sandbox's is %v: a pod's containers share one", ns.GetIpc(), sbNS.GetIpc())
	}
	return own, nil
}
