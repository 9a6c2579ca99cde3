package stage1

import (
	"strings"

	"github.com/moby/sys/capability"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/orbit-pods/orbit/pod"
)

// The fly flavor runs a pod's one app the way Container Linux ran host
// tools (etcd, flanneld, the kubelet): in the host's pid, net, ipc and uts
// namespaces, with every capability, no seccomp filter and no device
// rules, but rooted in its image. Its mount namespace is its own only so
// that its root and the host directories bound into it vanish with it; its
// cgroup is its own, under the pod's, so stop and gc find every process
// it started. There is no pod init: the app is the pod.

// flySpec is the runtime spec of a fly app.
func flySpec(m *pod.Manifest, dir pod.Dir, app *pod.App) (*specs.Spec, error) {
	p := app.Process
	p.Terminal = false
	if p.Cwd == "" {
		p.Cwd = "/"
	}
	if p.Capabilities == nil {
		all := allCapabilities()
		p.Capabilities = &specs.LinuxCapabilities{Bounding: all, Effective: all, Permitted: all}
	}
	s := &specs.Spec{
		Version: specs.Version,
		Root:    &specs.Root{Path: dir.Rootfs(app.Name), Readonly: app.ReadOnlyRootfs},
		Process: &p,
		Mounts: []specs.Mount{
			// A fresh proc in the host's PID namespace shows the host's
			// processes; sysfs in the host's network namespace its
			// interfaces; /dev is the host's own.
			{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/sys", Type: "bind", Source: "/sys", Options: []string{"rbind", "nosuid", "noexec", "nodev"}},
			{Destination: "/dev", Type: "bind", Source: "/dev", Options: []string{"rbind", "nosuid"}},
		},
		Linux: &specs.Linux{
			Namespaces:  []specs.LinuxNamespace{{Type: specs.MountNamespace}},
			CgroupsPath: pod.AppCgroup(m.UUID, app.Name),
			Resources:   &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}},
		},
	}
	if app.Resources != nil {
		r := *app.Resources
		r.Devices = s.Linux.Resources.Devices
		s.Linux.Resources = &r
	}
	if m.DNS != nil {
		for _, em := range etcMounts(m, dir) {
			if em.Destination == "/etc/resolv.conf" {
				s.Mounts = append(s.Mounts, em)
			}
		}
	}
	vm, err := volumeMounts(m, dir, app, nil)
	if err != nil {
		return nil, err
	}
	s.Mounts = append(s.Mounts, vm...)
	return s, nil
}

// allCapabilities is every capability stage1 could give: those in its
// own bounding set (which a container or unit may have narrowed).
func allCapabilities() []string {
	var out []string
	own, err := capability.NewPid2(0)
	if err == nil {
		err = own.Load()
	}
	for _, c := range capability.ListKnown() {
		if err == nil && !own.Get(capability.BOUNDING, c) {
			continue
		}
		out = append(out, "CAP_"+strings.ToUpper(c.String()))
	}
	return out
}
