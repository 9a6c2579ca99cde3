package pod

import (
	"encoding/json"
	"path/filepath"
)

// Network modes of a pod (Net.Mode).
const (
	// NetNone gives the pod a network namespace of its own with only
	// loopback: what a pod gets when no --net is given.
	NetNone = "none"
	// NetHost leaves the pod in the host's network namespace.
	NetHost = "host"
	// NetCNI gives the pod a network namespace of its own, kept at
	// Dir.NetNSFile, attached to Networks through CNI.
	NetCNI = "cni"
)

// Net is how a pod is networked. A manifest without one means NetNone.
type Net struct {
	Mode     string    `json:"mode"`
	Networks []Network `json:"networks,omitempty"`
	// PluginDirs are where the CNI plugin binaries are looked up, so that
	// stage1 and gc run the same plugins stage0 checked.
	PluginDirs []string `json:"pluginDirs,omitempty"`
	// Ports are forwarded from the host to the pod, given to every network
	// whose plugins take the portMappings capability.
	Ports []PortMapping `json:"ports,omitempty"`
}

// Network is one CNI network the pod is attached to, in the order given.
// The configuration is recorded whole, so a change to net.d after the pod
// started does not change what gc deletes.
type Network struct {
	Name string `json:"name"`
	// Args are passed to the plugins as CNI_ARGS (IP=10.1.2.3).
	Args [][2]string `json:"args,omitempty"`
	// Config is the network configuration list (.conflist) as JSON.
	Config json.RawMessage `json:"config"`
}

// PortMapping is a CNI portMappings entry: a host port forwarded to a pod
// port.
type PortMapping struct {
	HostPort      int    `json:"hostPort"`
	ContainerPort int    `json:"containerPort"`
	Protocol      string `json:"protocol"`
	HostIP        string `json:"hostIP,omitempty"`
}

// NetMode is the pod's network mode, NetNone when the manifest has no Net.
func (m *Manifest) NetMode() string {
	if m.Net == nil || m.Net.Mode == "" {
		return NetNone
	}
	return m.Net.Mode
}

// NetNSFile is the pod's persistent network namespace (a bind mount of the
// namespace, made in the host's mount namespace), when the pod has CNI
// networks.
func (d Dir) NetNSFile() string { return filepath.Join(string(d), "netns") }

// NetFile is net.json: what CNI returned for each network of the pod.
func (d Dir) NetFile() string { return filepath.Join(string(d), "net.json") }

// CNICacheDir is libcni's cache of the pod's attachments (what DEL needs).
func (d Dir) CNICacheDir() string { return filepath.Join(d.Stage1Dir(), "cni") }
