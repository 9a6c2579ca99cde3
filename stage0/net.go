package stage0

import (
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"strconv"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/orbit-pods/orbit/image/store"
	"github.com/orbit-pods/orbit/network"
	"github.com/orbit-pods/orbit/pod"
	"github.com/orbit-pods/orbit/pod/state"
)

// DefaultCNIPluginDir is where the CNI plugins are when nothing says
// otherwise. The build sets it to where `make install` puts them.
var DefaultCNIPluginDir = "/usr/local/libexec/orbit/cni"

// NetOptions are the pod's network flags.
type NetOptions struct {
	// Nets are the --net values; none means loopback only.
	Nets []string
	// Ports are the --port values.
	Ports []string
	// ConfigDir is --net-config-dir, read before <local-config>/net.d and
	// <system-config>/net.d.
	ConfigDir string
	// PluginDir is --net-plugin-dir, else DefaultCNIPluginDir.
	PluginDir string
}

// resolveNet makes the pod's Net from its options and images, and checks
// that the host ports asked for are free.
func (e *Env) resolveNet(st *store.Store, imgs []*store.Image, o NetOptions) (*pod.Net, error) {
	exposed := map[string]pod.PortMapping{}
	if len(o.Ports) > 0 {
		for _, img := range imgs {
			raw, err := st.ReadBlob(img.Config)
			if err != nil {
				return nil, err
			}
			var cfg ocispec.Image
			if err := json.Unmarshal(raw, &cfg); err != nil {
				return nil, fmt.Errorf("config %s: %w", img.Config, err)
			}
			for p := range cfg.Config.ExposedPorts {
				if name, pm, ok := network.ExposedName(p); ok {
					exposed[name] = pm
				}
			}
		}
	}
	var dirs []string
	if o.ConfigDir != "" {
		dirs = append(dirs, o.ConfigDir)
	}
	for _, d := range []string{e.LocalConfig, e.SystemConfig} {
		if d != "" {
			dirs = append(dirs, filepath.Join(d, "net.d"))
		}
	}
	plugins := o.PluginDir
	if plugins == "" {
		plugins = DefaultCNIPluginDir
	}
	n, err := network.Resolve(network.Options{
		Nets:       o.Nets,
		Ports:      o.Ports,
		Exposed:    exposed,
		ConfigDirs: dirs,
		PluginDirs: []string{plugins},
		IPAMDir:    filepath.Join(e.DataDir, "net", "ipam"),
	})
	if err != nil || n == nil {
		return n, err
	}
	for _, p := range n.Ports {
		if err := e.checkHostPort(p); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// checkHostPort fails if a host port to forward is in use: by a listener
// on the host, or forwarded to another running pod (forwarding rules hold
// no socket, so only the pods' manifests tell).
func (e *Env) checkHostPort(p pod.PortMapping) error {
	addr := net.JoinHostPort(p.HostIP, strconv.Itoa(p.HostPort))
	switch p.Protocol {
	case "udp":
		c, err := net.ListenPacket("udp", addr)
		if err != nil {
			return fmt.Errorf("--port: host port %d/udp is in use: %w", p.HostPort, err)
		}
		c.Close()
	default:
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("--port: host port %d/tcp is in use: %w", p.HostPort, err)
		}
		l.Close()
	}
	pods, err := e.Pods()
	if err != nil {
		return err
	}
	all, err := pods.List()
	if err != nil {
		return err
	}
	for _, pd := range all {
		if pd.State != state.Run {
			continue
		}
		m, err := pod.ReadManifest(pd.Dir().ManifestFile())
		if err != nil || m.Net == nil {
			continue
		}
		for _, q := range m.Net.Ports {
			if q.HostPort == p.HostPort && q.Protocol == p.Protocol {
				return fmt.Errorf("--port: host port %d/%s is forwarded to pod %s already", p.HostPort, p.Protocol, pd.UUID)
			}
		}
	}
	return nil
}

// HostMountNSEnv names the descriptor of the host's mount namespace that
// stage0 passes to stage1 for a pod with a netns file, so that stage1 can
// remove the file where it is mounted (docs/stage1-abi.md).
const HostMountNSEnv = "ORBIT_HOST_MNTNS_FD"

// createNetNS makes the pod's persistent network namespace when it has
// CNI networks. It runs before stage0 enters the pod's mount namespace, so
// the netns file is a mount of the host's, where gc finds it. It returns
// the environment that hands stage1 the host's mount namespace.
func (e *Env) createNetNS(pd *state.Pod) ([]string, error) {
	m, err := pod.ReadManifest(pd.Dir().ManifestFile())
	if err != nil {
		return nil, err
	}
	if m.NetMode() != pod.NetCNI {
		return nil, nil
	}
	// A pod in a user namespace has its network namespace made in that,
	// by stage1, which binds it to the file then (stage1/userns.go).
	if m.UserNamespace == nil {
		if err := network.CreateNetNS(pd.Dir().NetNSFile()); err != nil {
			return nil, fmt.Errorf("pod network namespace: %w", err)
		}
	}
	// Left open, without close-on-exec, for stage1: this process becomes it.
	fd, err := unix.Open("/proc/self/ns/mnt", unix.O_RDONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("open the host's mount namespace: %w", err)
	}
	return []string{HostMountNSEnv + "=" + strconv.Itoa(fd)}, nil
}

// NetworkInfo is one network of a PodInfo.
type NetworkInfo struct {
	Name   string   `json:"name"`
	IfName string   `json:"ifName"`
	IPs    []string `json:"ips"`
}

// networks reads what the pod's net.json says; a pod without one (no CNI
// networks, or not started) has none.
func networks(dir pod.Dir) []NetworkInfo {
	as, err := network.ReadAttachments(dir)
	if err != nil {
		return nil
	}
	var out []NetworkInfo
	for _, a := range as {
		out = append(out, NetworkInfo{Name: a.Network, IfName: a.IfName, IPs: a.IPs})
	}
	return out
}
