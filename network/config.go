package network

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"

	"github.com/orbit-pods/orbit/pod"
)

// The built-in networks. A conflist of the same name in a configuration
// directory replaces one.
const (
	// Default is a bridge, orbit0, with addresses from DefaultSubnet, a
	// default route through the host, IP masquerade and port forwarding.
	Default = "default"
	// DefaultRestricted is a bridge, orbit1, with addresses from
	// RestrictedSubnet and no route off the host: pods reach the host only.
	DefaultRestricted = "default-restricted"

	DefaultBridge    = "orbit0"
	DefaultSubnet    = "172.31.0.0/16"
	RestrictedBridge = "orbit1"
	RestrictedSubnet = "172.30.0.0/16"
)

// ErrInvalid marks a --net or --port that cannot be used.
var ErrInvalid = errors.New("invalid network option")

// Options are what Resolve makes the pod's Net from.
type Options struct {
	// Nets are the --net values, each a comma-separated list of
	// NAME[:K=V[;K=V...]]; none given means none.
	Nets []string
	// Ports are the --port values: NAME:HOSTPORT or PODPORT[/PROTO]:HOSTPORT.
	Ports []string
	// Exposed are the ports the pod's images expose, by name ("80-tcp").
	Exposed map[string]pod.PortMapping
	// ConfigDirs hold *.conflist files; a name in an earlier one wins.
	ConfigDirs []string
	// PluginDirs hold the CNI plugin binaries.
	PluginDirs []string
	// IPAMDir keeps the built-in networks' address leases.
	IPAMDir string
}

// Resolve turns the options into the pod's Net: nil for none (loopback
// only, what a pod gets without --net). Every network's configuration is
// read and its plugins found now, so that a mistake fails before the pod
// is made.
func Resolve(o Options) (*pod.Net, error) {
	var reqs []pod.Network
	for _, v := range o.Nets {
		for _, item := range strings.Split(v, ",") {
			r, err := parseNet(item)
			if err != nil {
				return nil, err
			}
			reqs = append(reqs, r)
		}
	}
	mode := pod.NetCNI
	for _, r := range reqs {
		if r.Name == pod.NetNone || r.Name == pod.NetHost {
			if len(reqs) > 1 || len(r.Args) > 0 {
				return nil, fmt.Errorf("--net=%s: %w: it excludes other networks and arguments", r.Name, ErrInvalid)
			}
			mode = r.Name
		}
	}
	if len(reqs) == 0 {
		mode = pod.NetNone
	}
	if mode != pod.NetCNI {
		if len(o.Ports) > 0 {
			return nil, fmt.Errorf("--port: %w: the pod has no network of its own to forward to (give --net)", ErrInvalid)
		}
		if mode == pod.NetNone {
			return nil, nil
		}
		return &pod.Net{Mode: mode}, nil
	}
	n := &pod.Net{Mode: pod.NetCNI, PluginDirs: o.PluginDirs}
	confs, err := loadConfigs(o.ConfigDirs)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, r := range reqs {
		if seen[r.Name] {
			return nil, fmt.Errorf("--net: %w: network %q given twice", ErrInvalid, r.Name)
		}
		seen[r.Name] = true
		cfg, ok := confs[r.Name]
		if !ok {
			cfg, ok = builtin(r.Name, o.IPAMDir)
		}
		if !ok {
			return nil, fmt.Errorf("--net: %w: no network %q (not built in, not in %s)", ErrInvalid, r.Name, strings.Join(o.ConfigDirs, ", "))
		}
		if err := checkPlugins(r.Name, cfg, o.PluginDirs); err != nil {
			return nil, err
		}
		r.Config = cfg
		n.Networks = append(n.Networks, r)
	}
	for _, p := range o.Ports {
		pm, err := ParsePort(p, o.Exposed)
		if err != nil {
			return nil, err
		}
		for _, q := range n.Ports {
			if q.HostPort == pm.HostPort && q.Protocol == pm.Protocol {
				return nil, fmt.Errorf("--port %s: %w: host port %d/%s forwarded twice", p, ErrInvalid, pm.HostPort, pm.Protocol)
			}
		}
		n.Ports = append(n.Ports, pm)
	}
	return n, nil
}

// parseNet reads NAME[:K=V[;K=V...]].
func parseNet(s string) (pod.Network, error) {
	name, args, hasArgs := strings.Cut(strings.TrimSpace(s), ":")
	r := pod.Network{Name: name}
	if name == "" {
		return r, fmt.Errorf("--net %q: %w: empty network name", s, ErrInvalid)
	}
	if hasArgs {
		for _, kv := range strings.Split(args, ";") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return r, fmt.Errorf("--net %q: %w: argument %q is not K=V", s, ErrInvalid, kv)
			}
			r.Args = append(r.Args, [2]string{k, v})
		}
	}
	return r, nil
}

// ParsePort reads a --port value: NAME:HOSTPORT, NAME an exposed port of
// the pod's images ("80-tcp" for an image's "80/tcp"), or
// PODPORT[/PROTO]:HOSTPORT with PROTO tcp (the default) or udp.
func ParsePort(s string, exposed map[string]pod.PortMapping) (pod.PortMapping, error) {
	name, host, ok := strings.Cut(s, ":")
	hp, err := strconv.Atoi(host)
	if !ok || err != nil || hp < 1 || hp > 65535 {
		return pod.PortMapping{}, fmt.Errorf("--port %q: %w: want NAME:HOSTPORT or PODPORT[/PROTO]:HOSTPORT", s, ErrInvalid)
	}
	if pm, ok := exposed[name]; ok {
		pm.HostPort = hp
		return pm, nil
	}
	port, proto, _ := strings.Cut(name, "/")
	if proto == "" {
		proto = "tcp"
	}
	cp, err := strconv.Atoi(port)
	if err != nil || cp < 1 || cp > 65535 {
		return pod.PortMapping{}, fmt.Errorf("--port %q: %w: %q is neither a port number nor a port the images expose", s, ErrInvalid, name)
	}
	if proto != "tcp" && proto != "udp" {
		return pod.PortMapping{}, fmt.Errorf("--port %q: %w: protocol %q (tcp, udp)", s, ErrInvalid, proto)
	}
	return pod.PortMapping{HostPort: hp, ContainerPort: cp, Protocol: proto}, nil
}

// ExposedName is the --port name of an image's exposed port: "80/tcp" is
// "80-tcp".
func ExposedName(port string) (string, pod.PortMapping, bool) {
	p, proto, _ := strings.Cut(port, "/")
	if proto == "" {
		proto = "tcp"
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		return "", pod.PortMapping{}, false
	}
	return p + "-" + proto, pod.PortMapping{ContainerPort: n, Protocol: proto}, true
}

// loadConfigs reads every *.conflist of dirs by network name; a name in an
// earlier directory wins. A file that does not parse is an error: it may be
// the network the user meant.
func loadConfigs(dirs []string) (map[string]json.RawMessage, error) {
	out := map[string]json.RawMessage{}
	for _, d := range dirs {
		files, err := filepath.Glob(filepath.Join(d, "*.conflist"))
		if err != nil {
			return nil, err
		}
		sort.Strings(files)
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("read network configuration: %w", err)
			}
			list, err := libcni.ConfListFromBytes(b)
			if err != nil {
				return nil, fmt.Errorf("network configuration %s: %w", f, err)
			}
			if _, ok := out[list.Name]; !ok {
				out[list.Name] = json.RawMessage(list.Bytes)
			}
		}
	}
	return out, nil
}

func checkPlugins(name string, cfg []byte, dirs []string) error {
	list, err := libcni.ConfListFromBytes(cfg)
	if err != nil {
		return fmt.Errorf("network %s: %w", name, err)
	}
	for _, p := range list.Plugins {
		if _, err := invoke.FindInPath(p.Network.Type, dirs); err != nil {
			return fmt.Errorf("network %s: plugin %q not found in %s", name, p.Network.Type, strings.Join(dirs, ":"))
		}
		if p.Network.IPAM.Type != "" {
			if _, err := invoke.FindInPath(p.Network.IPAM.Type, dirs); err != nil {
				return fmt.Errorf("network %s: IPAM plugin %q not found in %s", name, p.Network.IPAM.Type, strings.Join(dirs, ":"))
			}
		}
	}
	return nil
}

// builtin is the configuration list of a built-in network.
func builtin(name, ipamDir string) (json.RawMessage, bool) {
	var bridge map[string]any
	switch name {
	case Default:
		bridge = map[string]any{
			"type": "bridge", "bridge": DefaultBridge, "isGateway": true,
			"isDefaultGateway": true, "ipMasq": true, "hairpinMode": true,
			"ipam": hostLocal(DefaultSubnet, ipamDir),
		}
	case DefaultRestricted:
		bridge = map[string]any{
			"type": "bridge", "bridge": RestrictedBridge, "isGateway": true,
			"hairpinMode": true,
			"ipam":        hostLocal(RestrictedSubnet, ipamDir),
		}
	default:
		return nil, false
	}
	list := map[string]any{
		"cniVersion": "1.0.0",
		"name":       name,
		"plugins": []any{bridge, map[string]any{
			"type": "portmap", "backend": "nftables",
			"capabilities": map[string]bool{"portMappings": true},
		}},
	}
	b, err := json.Marshal(list)
	if err != nil {
		panic(err) // plain maps always marshal
	}
	return b, true
}

func hostLocal(subnet, dataDir string) map[string]any {
	return map[string]any{
		"type":    "host-local",
		"ranges":  [][]map[string]string{{{"subnet": subnet}}},
		"dataDir": dataDir,
	}
}
