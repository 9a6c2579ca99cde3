package pod

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// UserNamespace puts a pod in a user namespace of its own: its IDs are
// mapped to host IDs, so that its root is an unprivileged range of the
// host's users. The pod's other namespaces (PID, IPC, UTS, network) are
// made in it and belong to it, and its apps' layers and upper directories
// are idmapped mounts: a file of the host's root in an image is the apps'
// root's.
type UserNamespace struct {
	UIDMappings []specs.LinuxIDMapping `json:"uidMappings"`
	GIDMappings []specs.LinuxIDMapping `json:"gidMappings"`
}

// maxIDMappings is the kernel's limit on the lines of a uid_map.
const maxIDMappings = 340

// Validate checks that the mappings can be written to uid_map and
// gid_map, that they map the pod's root and nobody (whom its init runs
// as), and that they leave out the host's root.
func (u *UserNamespace) Validate() error {
	for _, k := range []struct {
		kind string
		ms   []specs.LinuxIDMapping
	}{{"uid", u.UIDMappings}, {"gid", u.GIDMappings}} {
		if err := validateIDMappings(k.ms); err != nil {
			return fmt.Errorf("user namespace %s mappings: %w", k.kind, err)
		}
	}
	return nil
}

func validateIDMappings(ms []specs.LinuxIDMapping) error {
	if len(ms) == 0 {
		return errors.New("none given")
	}
	if len(ms) > maxIDMappings {
		return fmt.Errorf("%d given, the kernel takes at most %d", len(ms), maxIDMappings)
	}
	for _, m := range ms {
		if m.Size == 0 {
			return fmt.Errorf("%d:%d:%d maps no ID", m.ContainerID, m.HostID, m.Size)
		}
		if uint64(m.ContainerID)+uint64(m.Size) > math.MaxUint32 || uint64(m.HostID)+uint64(m.Size) > math.MaxUint32 {
			return fmt.Errorf("%d:%d:%d goes past the last ID, %d", m.ContainerID, m.HostID, m.Size, uint32(math.MaxUint32-1))
		}
		if m.HostID == 0 {
			return fmt.Errorf("%d:%d:%d maps the host's root into the pod", m.ContainerID, m.HostID, m.Size)
		}
	}
	for _, side := range []func(specs.LinuxIDMapping) uint32{
		func(m specs.LinuxIDMapping) uint32 { return m.ContainerID },
		func(m specs.LinuxIDMapping) uint32 { return m.HostID },
	} {
		s := append([]specs.LinuxIDMapping(nil), ms...)
		sort.Slice(s, func(i, j int) bool { return side(s[i]) < side(s[j]) })
		for i := 1; i < len(s); i++ {
			if uint64(side(s[i-1]))+uint64(s[i-1].Size) > uint64(side(s[i])) {
				return fmt.Errorf("%d:%d:%d and %d:%d:%d overlap", s[i-1].ContainerID, s[i-1].HostID, s[i-1].Size, s[i].ContainerID, s[i].HostID, s[i].Size)
			}
		}
	}
	if _, ok := MapID(ms, 0); !ok {
		return errors.New("ID 0 (the pod's root) is not mapped")
	}
	if _, ok := MapID(ms, NobodyID); !ok {
		return fmt.Errorf("ID %d (nobody, whom the pod's init runs as) is not mapped", NobodyID)
	}
	return nil
}

// NobodyID is the user and group the pod's init runs as: it only waits
// and reaps, which needs no rights, and apps running as root cannot
// reach it through /proc/1.
const NobodyID = 65534

// Root is the host user and group of the namespace's root; Validate
// makes sure they are mapped.
func (u *UserNamespace) Root() (uid, gid uint32) {
	uid, _ = MapID(u.UIDMappings, 0)
	gid, _ = MapID(u.GIDMappings, 0)
	return uid, gid
}

// IPCSysctl says whether a sysctl (kernel.shmmax or kernel/shmmax) is
// one of the IPC namespace's.
func IPCSysctl(k string) bool {
	k = strings.ReplaceAll(k, "/", ".")
	for _, p := range []string{"fs.mqueue.", "kernel.shm", "kernel.msg", "kernel.sem"} {
		if strings.HasPrefix(k, p) {
			return true
		}
	}
	return false
}

// MapID is the host ID of id, an ID in the namespace, under mappings ms.
func MapID(ms []specs.LinuxIDMapping, id uint32) (uint32, bool) {
	for _, m := range ms {
		if id >= m.ContainerID && uint64(id) < uint64(m.ContainerID)+uint64(m.Size) {
			return m.HostID + (id - m.ContainerID), true
		}
	}
	return 0, false
}

// validateUserNamespace checks what a pod in a user namespace cannot have:
// the host's namespaces (which belong to the host's user namespace, where
// the pod's root has no rights), fly's, an app without an overlay (its
// copied root is the host's IDs) or a user the mappings leave out.
func (m *Manifest) validateUserNamespace() error {
	u := m.UserNamespace
	if u == nil {
		return nil
	}
	if err := u.Validate(); err != nil {
		return fmt.Errorf("pod manifest: %w", err)
	}
	switch {
	case m.Flavor == FlavorFly:
		return errors.New("pod manifest: a fly pod runs in the host's namespaces: it cannot have a user namespace")
	case m.NetMode() == NetHost:
		return errors.New("pod manifest: a pod in a user namespace has a network namespace of its own: not the host's network")
	case m.HostPID || m.HostIPC:
		return errors.New("pod manifest: a pod in a user namespace has PID and IPC namespaces of its own: not the host's")
	}
	for _, a := range m.Apps {
		if err := u.checkApp(&a); err != nil {
			return fmt.Errorf("pod manifest: %w", err)
		}
	}
	return nil
}

// checkApp checks that app can run in the user namespace.
func (u *UserNamespace) checkApp(a *App) error {
	if a.NoOverlay {
		return fmt.Errorf("app %q: an app in a user namespace needs an overlay root (its layers are mapped); it has a copied one", a.Name)
	}
	user := a.Process.User
	if _, ok := MapID(u.UIDMappings, user.UID); !ok {
		return fmt.Errorf("app %q: user %d is not mapped in the pod's user namespace", a.Name, user.UID)
	}
	for _, g := range append([]uint32{user.GID}, user.AdditionalGids...) {
		if _, ok := MapID(u.GIDMappings, g); !ok {
			return fmt.Errorf("app %q: group %d is not mapped in the pod's user namespace", a.Name, g)
		}
	}
	return nil
}
