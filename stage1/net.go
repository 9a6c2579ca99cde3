package stage1

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"time"

	"github.com/orbit-pods/orbit/network"
	"github.com/orbit-pods/orbit/pod"
)

// cniTimeout bounds one round of CNI calls: plugins are programs that can
// hang (on a lock of their IPAM store, on netlink).
const cniTimeout = 2 * time.Minute

// attachNetworks attaches the pod to its CNI networks before anything runs
// in it, and takes the apps' resolver configuration from the networks when
// the pod was given none.
func (s *supervisor) attachNetworks() error {
	if s.m.NetMode() != pod.NetCNI {
		return nil
	}
	if s.m.UserNamespace != nil {
		if err := s.bindNetNS(); err != nil {
			return err
		}
	}
	if !network.IsNetNS(s.dir.NetNSFile()) {
		return fmt.Errorf("the pod's network namespace %s is missing", s.dir.NetNSFile())
	}
	if err := os.MkdirAll(s.dir.CNICacheDir(), 0o700); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), cniTimeout)
	defer cancel()
	as, err := network.Attach(ctx, s.dir, s.m.UUID, s.m.Net)
	if err != nil {
		return err
	}
	for _, a := range as {
		s.logf("network %s: %s %v", a.Network, a.IfName, a.IPs)
	}
	if s.m.DNS == nil {
		s.m.DNS = network.DNS(as)
	}
	return nil
}

// detachNetworks takes the pod off its CNI networks and removes its netns
// file. The file is a mount of the host's mount namespace, which stage1 is
// not in: a helper run of stage1 in that namespace removes it. Without the
// namespace (an older stage0) the file stays, holding only loopback, until
// gc.
func (s *supervisor) detachNetworks() error {
	if s.m.NetMode() != pod.NetCNI {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), cniTimeout)
	defer cancel()
	if err := network.Detach(ctx, s.dir, s.m.UUID, s.m.Net); err != nil {
		return err
	}
	if hostMountNS() == nil {
		return nil
	}
	if err := s.inHostMountNS(ctx, ReleaseNetNSVerb); err != nil {
		return fmt.Errorf("remove the pod's netns file: %w", err)
	}
	return nil
}

// inHostMountNS runs the stage1 verb in the host's mount namespace, which
// stage0 passed (mntns.go enters it), with files as descriptors 4 on.
func (s *supervisor) inHostMountNS(ctx context.Context, verb string, files ...*os.File) error {
	mntns := hostMountNS()
	if mntns == nil {
		return errors.New("stage0 passed no host mount namespace")
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, exe, verb, "--pod-dir="+string(s.dir))
	cmd.ExtraFiles = append([]*os.File{mntns}, files...)
	cmd.Env = append(os.Environ(), "_ORBIT_ENTER_MNTNS_FD=3")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%w: %s", err, out)
	}
	return nil
}

// ReleaseNetNSVerb is the stage1 verb that removes a pod's netns file; it
// is stage1's own, run in the host's mount namespace, not part of the ABI.
const ReleaseNetNSVerb = "release-netns"

// ReleaseNetNS unmounts and removes the pod's netns file.
func ReleaseNetNS(dir pod.Dir) error {
	return network.RemoveNetNS(dir.NetNSFile())
}

// hostMountNS is the host's mount namespace stage0 passed, or nil. One
// *os.File for the process: a second would close the descriptor when
// collected.
var hostMountNS = sync.OnceValue(func() *os.File {
	fd, err := strconv.Atoi(os.Getenv("ORBIT_HOST_MNTNS_FD"))
	if err != nil || fd < 3 {
		return nil
	}
	return os.NewFile(uintptr(fd), "host-mntns")
})

// gcNetwork releases the network of a pod whose supervisor may have died
// before it could: CNI DEL for each network (from libcni's cache when the
// namespace is gone), then the netns file. gc runs in the host's mount
// namespace, where the netns file is mounted.
func gcNetwork(dir pod.Dir) error {
	m, err := pod.ReadManifest(dir.ManifestFile())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if m.NetMode() != pod.NetCNI {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), cniTimeout)
	defer cancel()
	return errors.Join(network.Detach(ctx, dir, m.UUID, m.Net), network.RemoveNetNS(dir.NetNSFile()))
}
