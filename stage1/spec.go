package stage1

import (
	"fmt"
	"strconv"

	// The device cgroup rules of the specs need the devices manager.
	_ "github.com/opencontainers/cgroups/devices"
	"github.com/opencontainers/runc/libcontainer/configs"
	"github.com/opencontainers/runc/libcontainer/specconv"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/orbit-pods/orbit/pod"
)

// initBinary is where the pod's init is bind-mounted in its root.
const initBinary = "/orbit-pod-init"

// appSpec is the runtime spec of one app: its own mount namespace and
// overlay root, the pod's shared namespaces joined through the init's PID,
// runc's default mounts, masked and read-only paths and device rules, and
// the app's process as stage0 resolved it.
func appSpec(m *pod.Manifest, dir pod.Dir, app *pod.App, initPID int, trees map[string]string) (*specs.Spec, error) {
	s := specconv.Example()
	s.Root = &specs.Root{Path: dir.Rootfs(app.Name), Readonly: app.ReadOnlyRootfs}
	s.Hostname = ""
	p := app.Process
	p.Terminal = false
	if p.Cwd == "" {
		p.Cwd = "/"
	}
	if p.Capabilities == nil {
		p.Capabilities = &specs.LinuxCapabilities{
			Bounding:  pod.DefaultCapabilities,
			Effective: pod.DefaultCapabilities,
			Permitted: pod.DefaultCapabilities,
		}
	}
	p.NoNewPrivileges = app.NoNewPrivileges == nil || *app.NoNewPrivileges
	// Resource limits are the supervisor's (a unit's LimitNOFILE= reaches
	// the apps), not runc's example value.
	p.Rlimits = nil
	s.Process = &p
	ns := func(t specs.LinuxNamespaceType, name string) specs.LinuxNamespace {
		return specs.LinuxNamespace{Type: t, Path: "/proc/" + strconv.Itoa(initPID) + "/ns/" + name}
	}
	// A namespace left out of the list is the supervisor's: the host's.
	s.Linux.Namespaces = []specs.LinuxNamespace{
		{Type: specs.MountNamespace},
		ns(specs.NetworkNamespace, "net"),
		ns(specs.UTSNamespace, "uts"),
	}
	switch {
	case m.HostPID:
	case app.OwnPIDNamespace:
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.PIDNamespace})
	default:
		s.Linux.Namespaces = append(s.Linux.Namespaces, ns(specs.PIDNamespace, "pid"))
	}
	if !m.HostIPC {
		s.Linux.Namespaces = append(s.Linux.Namespaces, ns(specs.IPCNamespace, "ipc"))
	}
	if m.UserNamespace != nil {
		// runc takes the mappings from the namespace it joins.
		s.Linux.Namespaces = append(s.Linux.Namespaces, ns(specs.UserNamespace, "user"))
	}
	if app.MaskedPaths != nil {
		s.Linux.MaskedPaths = app.MaskedPaths
	}
	if app.ReadonlyPaths != nil {
		s.Linux.ReadonlyPaths = app.ReadonlyPaths
	}
	s.Linux.CgroupsPath = pod.AppCgroup(m.UUID, app.Name)
	s.Linux.Seccomp = app.Seccomp
	if s.Linux.Seccomp == nil {
		s.Linux.Seccomp = pod.DefaultSeccomp()
	}
	if app.Resources != nil {
		r := *app.Resources
		r.Devices = s.Linux.Resources.Devices
		s.Linux.Resources = &r
	}
	s.Mounts = append(s.Mounts, etcMounts(m, dir)...)
	vm, err := volumeMounts(m, dir, app, trees)
	if err != nil {
		return nil, err
	}
	s.Mounts = append(s.Mounts, vm...)
	// runc makes the app's mounts slaves of the pod's by default; an
	// rshared mount needs them shared to stay the host's peer.
	for _, mp := range app.Mounts {
		if mp.Propagation == pod.PropagationShared {
			s.Linux.RootfsPropagation = pod.PropagationShared
		}
	}
	return s, nil
}

// libcontainerConfig converts a runtime spec with runc's own converter.
func libcontainerConfig(id string, s *specs.Spec) (*configs.Config, error) {
	cfg, err := specconv.CreateLibcontainerConfig(&specconv.CreateOpts{
		CgroupName:   id,
		Spec:         s,
		NoNewKeyring: false,
	})
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", id, err)
	}
	return cfg, nil
}
