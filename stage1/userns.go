package stage1

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/orbit-pods/orbit/idmap"
	"github.com/orbit-pods/orbit/network"
	"github.com/orbit-pods/orbit/pod"
)

// A pod with a user namespace (pod.UserNamespace): the init makes the
// namespace (podinit.go), the apps' runc joins it, and their roots are
// overlays of idmapped layers: each layer is cloned with the pod's
// mappings, so its files keep the host's IDs on disk (a layer is shared
// with every other pod) and the apps see them as their own.

func sysIDMaps(ms []specs.LinuxIDMapping) []syscall.SysProcIDMap {
	out := make([]syscall.SysProcIDMap, len(ms))
	for i, m := range ms {
		out[i] = syscall.SysProcIDMap{ContainerID: int(m.ContainerID), HostID: int(m.HostID), Size: int(m.Size)}
	}
	return out
}

// letPodRootIn lets the pod's root through the pod directory, which is
// the host root's alone (0700): runc, in the pod's user namespace by then,
// reaches the app's root and the pod's files through it. Only the group of
// the pod's root gets in, and only to pass (0710), as the host's other
// users stay out.
func (s *supervisor) letPodRootIn() error {
	_, gid := s.m.UserNamespace.Root()
	if err := idmap.CheckPassable(filepath.Dir(string(s.dir))); err != nil {
		return err
	}
	if err := os.Chown(string(s.dir), -1, int(gid)); err != nil {
		return fmt.Errorf("let the pod's root through its directory: %w", err)
	}
	if err := os.Chmod(string(s.dir), 0o710); err != nil {
		return fmt.Errorf("let the pod's root through its directory: %w", err)
	}
	return nil
}

// closePodDir takes back what letPodRootIn gave, once the pod's processes
// are gone.
func (s *supervisor) closePodDir() error {
	if err := os.Chown(string(s.dir), -1, 0); err != nil {
		return err
	}
	return os.Chmod(string(s.dir), 0o700)
}

// initNS opens a namespace the init holds ("user", "net", ...).
func (s *supervisor) initNS(kind string) (*os.File, error) {
	pid, err := s.initProc.Pid()
	if err != nil {
		return nil, err
	}
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/ns/" + kind)
	if err != nil {
		return nil, fmt.Errorf("the pod's %s namespace: %w", kind, err)
	}
	return f, nil
}

// idmappedLayer is the idmapped clone of a layer, and how many of the
// pod's apps' roots use it.
type idmappedLayer struct {
	path  string
	users int
}

// idmappedLayers maps the layers of an app into the pod's user namespace,
// each once per pod however many apps use it, and returns their mapped
// paths. Apps are mounted one at a time (at the start, then under the
// control lock); releaseLayers undoes it.
func (s *supervisor) idmappedLayers(userns *os.File, layers []string) ([]string, error) {
	if s.idmapped == nil {
		s.idmapped = map[string]*idmappedLayer{}
	}
	out := make([]string, len(layers))
	for i, l := range layers {
		il, ok := s.idmapped[l]
		if !ok {
			s.idmapSeq++
			p := filepath.Join(s.dir.IDMappedDir(), "layers", strconv.Itoa(s.idmapSeq))
			if err := idmap.Clone(l, p, userns, true); err != nil {
				s.releaseLayers(layers[:i])
				return nil, fmt.Errorf("layer %s: %w", l, err)
			}
			il = &idmappedLayer{path: p}
			s.idmapped[l] = il
			s.mounts = append(s.mounts, p)
		}
		il.users++
		out[i] = il.path
	}
	return out, nil
}

// releaseLayers gives back an app's uses of idmapped layers, unmounting
// those no app uses any more: a long-lived sandbox whose containers move
// to newer images does not keep the old layers mounted.
func (s *supervisor) releaseLayers(layers []string) {
	for _, l := range layers {
		il, ok := s.idmapped[l]
		if !ok {
			continue
		}
		if il.users--; il.users > 0 {
			continue
		}
		delete(s.idmapped, l)
		if err := unix.Unmount(il.path, unix.MNT_DETACH); err != nil {
			s.logf("unmount %s: %v", il.path, err)
		}
		_ = os.Remove(il.path)
		s.mounts = slices.DeleteFunc(s.mounts, func(p string) bool { return p == il.path })
	}
}

// mountAppRoot mounts an app's overlay root: its layers under its upper
// directory. In a pod with a user namespace the layers are their idmapped
// clones, and the upper directory is the pod's root's: what an app writes
// is kept with the host IDs it has, as on a volume. (An idmapped upper
// directory would keep the image's IDs, but the overlay makes its work
// directory as the host's root, whom the mapping leaves out.) It returns
// the app's own mounts; unmountAppRoot undoes them.
func (s *supervisor) mountAppRoot(a *pod.App) ([]string, error) {
	for _, d := range []string{s.dir.Upper(a.Name), s.dir.Work(a.Name), s.dir.Rootfs(a.Name)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	lowers := a.Layers
	if u := s.m.UserNamespace; u != nil {
		uid, gid := u.Root()
		for _, d := range []string{s.dir.Upper(a.Name), s.dir.Work(a.Name)} {
			if err := os.Chown(d, int(uid), int(gid)); err != nil {
				return nil, err
			}
		}
		userns, err := s.initNS("user")
		if err != nil {
			return nil, err
		}
		defer userns.Close()
		if lowers, err = s.idmappedLayers(userns, a.Layers); err != nil {
			return nil, err
		}
	}
	if err := mountOverlay(lowers, s.dir.Upper(a.Name), s.dir.Work(a.Name), s.dir.Rootfs(a.Name)); err != nil {
		if s.m.UserNamespace != nil {
			s.releaseLayers(a.Layers)
			return nil, fmt.Errorf("%w (an overlay of idmapped layers needs Linux 5.19 or later)", err)
		}
		return nil, err
	}
	return []string{s.dir.Rootfs(a.Name)}, nil
}

// unmountAppRoot undoes mountAppRoot, for an app removed from its pod.
func (s *supervisor) unmountAppRoot(a *pod.App) error {
	root := s.dir.Rootfs(a.Name)
	s.mounts = slices.DeleteFunc(s.mounts, func(p string) bool { return p == root })
	if err := unix.Unmount(root, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("unmount %s: %w", root, err)
	}
	if s.m.UserNamespace != nil {
		s.releaseLayers(a.Layers)
	}
	return nil
}

// bindNetNS makes the network namespace the init made in the pod's user
// namespace the pod's netns file, where CNI and gc find it. The file is a
// mount of the host's mount namespace, made by a helper run of stage1
// there, and of stage1's own.
func (s *supervisor) bindNetNS() error {
	netns, err := s.initNS("net")
	if err != nil {
		return err
	}
	defer netns.Close()
	if err := s.inHostMountNS(context.Background(), BindNetNSVerb, netns); err != nil {
		return fmt.Errorf("bind the pod's network namespace to %s: %w", s.dir.NetNSFile(), err)
	}
	// The host's mount reaches stage1's mount namespace (a slave of the
	// host's) only where the pod directory is on a shared mount: the
	// file is bound here too, for the CNI plugins stage1 runs. The mount
	// goes when the release helper removes the file.
	src := "/proc/self/fd/" + strconv.Itoa(int(netns.Fd()))
	if err := unix.Mount(src, s.dir.NetNSFile(), "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind the pod's network namespace to %s: %w", s.dir.NetNSFile(), err)
	}
	return nil
}

// BindNetNSVerb is the stage1 verb that binds the namespace of its
// descriptor 4 to the pod's netns file; like ReleaseNetNSVerb it is
// stage1's own, run in the host's mount namespace.
const BindNetNSVerb = "bind-netns"

// BindNetNS binds ns to the pod's netns file.
func BindNetNS(dir pod.Dir, ns *os.File) error {
	return network.BindNetNS(dir.NetNSFile(), ns)
}
