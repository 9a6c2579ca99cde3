package stage1

import (
	"fmt"
	"os"
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

// initSpec is the runtime spec of the pod's init: fresh pid, net, ipc, uts
// and mount namespaces, a read-only root holding only the init binary, no
// capabilities beyond what bringing up loopback needs (done by libcontainer
// before the init runs).
func initSpec(m *pod.Manifest, dir pod.Dir, initPath string) *specs.Spec {
	return &specs.Spec{
		Version:  specs.Version,
		Root:     &specs.Root{Path: dir.InitRootfs(), Readonly: true},
		Hostname: m.Hostname,
		Process: &specs.Process{
			Args:            []string{initBinary},
			Cwd:             "/",
			NoNewPrivileges: true,
			Capabilities:    &specs.LinuxCapabilities{},
		},
		Mounts: []specs.Mount{{
			// libcontainer's init reads /proc before it execs ours.
			Destination: "/proc",
			Type:        "proc",
			Source:      "proc",
			Options:     []string{"nosuid", "noexec", "nodev"},
		}, {
			Destination: initBinary,
			Type:        "bind",
			Source:      initPath,
			Options:     []string{"bind", "ro", "nosuid", "nodev"},
		}},
		Linux: &specs.Linux{
			CgroupsPath: pod.InitCgroup(m.UUID),
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace},
				{Type: specs.NetworkNamespace},
				{Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace},
				{Type: specs.MountNamespace},
			},
			Resources: &specs.LinuxResources{
				Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
			},
		},
	}
}

// appSpec is the runtime spec of one app: its own mount namespace and
// overlay root, the pod's shared namespaces joined through the init's PID,
// runc's default mounts, masked and read-only paths and device rules, and
// the app's process as stage0 resolved it.
func appSpec(m *pod.Manifest, dir pod.Dir, app *pod.App, initPID int) (*specs.Spec, error) {
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
	p.NoNewPrivileges = true
	// Resource limits are the supervisor's (a unit's LimitNOFILE= reaches
	// the apps), not runc's example value.
	p.Rlimits = nil
	s.Process = &p
	ns := func(t specs.LinuxNamespaceType, name string) specs.LinuxNamespace {
		return specs.LinuxNamespace{Type: t, Path: "/proc/" + strconv.Itoa(initPID) + "/ns/" + name}
	}
	s.Linux.Namespaces = []specs.LinuxNamespace{
		{Type: specs.MountNamespace},
		ns(specs.PIDNamespace, "pid"),
		ns(specs.NetworkNamespace, "net"),
		ns(specs.IPCNamespace, "ipc"),
		ns(specs.UTSNamespace, "uts"),
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
	vm, err := volumeMounts(m, dir, app)
	if err != nil {
		return nil, err
	}
	s.Mounts = append(s.Mounts, vm...)
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

// ensureInitRoot makes the init's root: an empty directory the binary is
// bind-mounted into.
func ensureInitRoot(dir pod.Dir) error {
	return os.MkdirAll(dir.InitRootfs(), 0o755)
}
