package cri

import (
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/orbit-pods/orbit/idmap"
	"github.com/orbit-pods/orbit/pod"
)

// probeUserNamespaces says whether this node can run pods in user
// namespaces (nil), or why not. Status advertises the feature from it.
func (s *Server) probeUserNamespaces() error {
	stage1, err := s.cfg.Env.Stage1("", s.cfg.Stage1Path)
	if err != nil {
		return err
	}
	// The data directory, probed, may not be there yet.
	if _, err := s.cfg.Env.Pods(); err != nil {
		return err
	}
	return idmap.Probe(s.cfg.Env.DataDir, filepath.Join(filepath.Dir(stage1), pod.InitBinary))
}

// sandboxUserNamespace is the user namespace a sandbox config asks for:
// nil for the node's, the mappings for a pod's own. As the kubelet does,
// it takes one mapping of user and one of group IDs, both from ID 0.
func (s *Server) sandboxUserNamespace(ns *runtimeapi.NamespaceOption) (*pod.UserNamespace, error) {
	u := ns.GetUsernsOptions()
	switch usernsMode(u) {
	case runtimeapi.NamespaceMode_NODE:
		if len(u.GetUids())+len(u.GetGids()) > 0 {
			return nil, invalid("pod sandbox config: user namespace mode NODE takes no ID mappings")
		}
		return nil, nil
	case runtimeapi.NamespaceMode_POD:
	default:
		return nil, invalid("pod sandbox config: user namespace mode %v: a pod's containers share the pod's user namespace (POD) or are in the node's (NODE)", u.GetMode())
	}
	if err := s.usernsErr(); err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "pod sandbox config: a user namespace of the pod's own is not offered on this node: %v", err)
	}
	if ns.GetNetwork() == runtimeapi.NamespaceMode_NODE || ns.GetPid() == runtimeapi.NamespaceMode_NODE || ns.GetIpc() == runtimeapi.NamespaceMode_NODE {
		return nil, invalid("pod sandbox config: a pod in a user namespace of its own cannot be in the node's network, PID or IPC namespace")
	}
	conv := func(kind string, ms []*runtimeapi.IDMapping) ([]specs.LinuxIDMapping, error) {
		if len(ms) != 1 {
			return nil, invalid("pod sandbox config: user namespace: %d %s mappings, want one", len(ms), kind)
		}
		m := ms[0]
		if m.ContainerId != 0 {
			return nil, invalid("pod sandbox config: user namespace: the %s mapping starts at %d: it must map ID 0, the pod's root", kind, m.ContainerId)
		}
		return []specs.LinuxIDMapping{{ContainerID: m.ContainerId, HostID: m.HostId, Size: m.Length}}, nil
	}
	var out pod.UserNamespace
	var err error
	if out.UIDMappings, err = conv("uid", u.GetUids()); err != nil {
		return nil, err
	}
	if out.GIDMappings, err = conv("gid", u.GetGids()); err != nil {
		return nil, err
	}
	if err := out.Validate(); err != nil {
		return nil, invalid("pod sandbox config: %v", err)
	}
	return &out, nil
}

// checkContainerUserNamespace checks a container's user namespace against
// its sandbox's: the kubelet gives each container the pod's.
func checkContainerUserNamespace(sb *runtimeapi.PodSandboxConfig, ns *runtimeapi.NamespaceOption) error {
	c := ns.GetUsernsOptions()
	if c == nil {
		return nil
	}
	p := sb.GetLinux().GetSecurityContext().GetNamespaceOptions().GetUsernsOptions()
	if usernsMode(c) != usernsMode(p) || !sameMappings(c.GetUids(), p.GetUids()) || !sameMappings(c.GetGids(), p.GetGids()) {
		return invalid("container config: user namespace %v differs from its pod sandbox's %v: a pod's containers share one", c, p)
	}
	return nil
}

// mountIDMapped says whether a container mount is to be idmapped: it
// carries the mappings of the pod's user namespace.
func mountIDMapped(sb *runtimeapi.PodSandboxConfig, m *runtimeapi.Mount) (bool, error) {
	if len(m.UidMappings)+len(m.GidMappings) == 0 {
		return false, nil
	}
	p := sb.GetLinux().GetSecurityContext().GetNamespaceOptions().GetUsernsOptions()
	if usernsMode(p) != runtimeapi.NamespaceMode_POD {
		return false, invalid("container config: mount %s has ID mappings, and its pod sandbox has no user namespace of its own", m.ContainerPath)
	}
	if !sameMappings(m.UidMappings, p.GetUids()) || !sameMappings(m.GidMappings, p.GetGids()) {
		return false, invalid("container config: mount %s: its ID mappings differ from its pod sandbox's user namespace: only the pod's are offered", m.ContainerPath)
	}
	return true, nil
}

// usernsMode is the mode of u, the node's when none was given (POD is the
// zero mode).
func usernsMode(u *runtimeapi.UserNamespace) runtimeapi.NamespaceMode {
	if u == nil {
		return runtimeapi.NamespaceMode_NODE
	}
	return u.GetMode()
}

func sameMappings(a, b []*runtimeapi.IDMapping) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].ContainerId != b[i].ContainerId || a[i].HostId != b[i].HostId || a[i].Length != b[i].Length {
			return false
		}
	}
	return true
}
