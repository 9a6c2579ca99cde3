// Package network attaches pods to networks through CNI (libcni from
// github.com/containernetworking/cni). It provides the three things a pod's
// network needs, in the order they happen:
//
//   - Resolve (stage0): --net and --port into the pod manifest's Net, with
//     each network's configuration list recorded whole and its plugins
//     checked, so nothing later depends on net.d;
//   - CreateNetNS (stage0, in the host's mount namespace): a persistent
//     network namespace at the pod's netns file, loopback up;
//   - Attach and Detach (stage1 run, stage1 gc): CNI ADD for each network
//     before the apps start, DEL for each when the pod ends or when gc finds
//     a pod whose supervisor died. DEL works without the namespace, from
//     libcni's cache in the pod directory.
//
// What ADD returned is kept in the pod's net.json (Attachments), which
// status reads.
package network

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/orbit-pods/orbit/pod"
)

// Attachment is one network of a pod as CNI set it up: an entry of net.json.
type Attachment struct {
	Network string `json:"network"`
	IfName  string `json:"ifName"`
	// IPs are the pod's addresses on the network, in CIDR form.
	IPs []string `json:"ips"`
	// Result is the plugins' whole result, in CNI's current version.
	Result *types100.Result `json:"result"`
}

// ifName is the pod's interface on its i-th network.
func ifName(i int) string { return "eth" + strconv.Itoa(i) }

func cniConfig(dir pod.Dir, n *pod.Net) *libcni.CNIConfig {
	return libcni.NewCNIConfigWithCacheDir(n.PluginDirs, dir.CNICacheDir(), nil)
}

func runtimeConf(dir pod.Dir, uuid string, n *pod.Net, i int, netns string) *libcni.RuntimeConf {
	args := append([][2]string{{"IgnoreUnknown", "1"}}, n.Networks[i].Args...)
	rt := &libcni.RuntimeConf{
		ContainerID: uuid,
		NetNS:       netns,
		IfName:      ifName(i),
		Args:        args,
		CacheDir:    dir.CNICacheDir(),
	}
	if len(n.Ports) > 0 {
		rt.CapabilityArgs = map[string]any{"portMappings": n.Ports}
	}
	return rt
}

// Attach runs CNI ADD for each of the pod's networks, in order, on the
// pod's network namespace, and records the results in net.json. If one
// fails, what was attached (the failing network included, which may be half
// made) is deleted again before the error is returned.
func Attach(ctx context.Context, dir pod.Dir, uuid string, n *pod.Net) ([]Attachment, error) {
	c := cniConfig(dir, n)
	var out []Attachment
	for i, nw := range n.Networks {
		list, err := libcni.ConfListFromBytes(nw.Config)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("network %s: %w", nw.Name, err), Detach(ctx, dir, uuid, n))
		}
		res, err := c.AddNetworkList(ctx, list, runtimeConf(dir, uuid, n, i, dir.NetNSFile()))
		if err != nil {
			return nil, errors.Join(fmt.Errorf("network %s: %w", nw.Name, err), Detach(ctx, dir, uuid, n))
		}
		a, err := attachment(nw.Name, ifName(i), res)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("network %s: %w", nw.Name, err), Detach(ctx, dir, uuid, n))
		}
		out = append(out, a)
		if err := writeAttachments(dir, out); err != nil {
			return nil, errors.Join(err, Detach(ctx, dir, uuid, n))
		}
	}
	return out, nil
}

func attachment(name, ifname string, res types.Result) (Attachment, error) {
	r, err := types100.NewResultFromResult(res)
	if err != nil {
		return Attachment{}, fmt.Errorf("read CNI result: %w", err)
	}
	a := Attachment{Network: name, IfName: ifname, IPs: []string{}, Result: r}
	for _, ip := range r.IPs {
		a.IPs = append(a.IPs, ip.Address.String())
	}
	return a, nil
}

// Detach runs CNI DEL for each of the pod's networks, last first. It is
// safe to call more than once and when the network namespace is gone:
// plugins then release what they hold outside it (IPAM leases, port
// forwarding rules). Every network is tried; the errors are joined.
func Detach(ctx context.Context, dir pod.Dir, uuid string, n *pod.Net) error {
	c := cniConfig(dir, n)
	netns := dir.NetNSFile()
	if !IsNetNS(netns) {
		netns = ""
	}
	var errs []error
	for i := len(n.Networks) - 1; i >= 0; i-- {
		nw := n.Networks[i]
		list, err := libcni.ConfListFromBytes(nw.Config)
		if err != nil {
			errs = append(errs, fmt.Errorf("network %s: %w", nw.Name, err))
			continue
		}
		if err := c.DelNetworkList(ctx, list, runtimeConf(dir, uuid, n, i, netns)); err != nil {
			errs = append(errs, fmt.Errorf("remove pod from network %s: %w", nw.Name, err))
		}
	}
	return errors.Join(errs...)
}

func writeAttachments(dir pod.Dir, as []Attachment) error {
	b, err := json.MarshalIndent(as, "", "  ")
	if err != nil {
		return err
	}
	tmp := dir.NetFile() + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("write net.json: %w", err)
	}
	return os.Rename(tmp, dir.NetFile())
}

// ReadAttachments reads the pod's net.json; a pod without one has none.
func ReadAttachments(dir pod.Dir) ([]Attachment, error) {
	b, err := os.ReadFile(dir.NetFile())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var as []Attachment
	if err := json.Unmarshal(b, &as); err != nil {
		return nil, fmt.Errorf("parse %s: %w", dir.NetFile(), err)
	}
	return as, nil
}

// DNS is the resolver configuration the first network that returned one
// gives, or nil.
func DNS(as []Attachment) *pod.DNS {
	for _, a := range as {
		if a.Result == nil || len(a.Result.DNS.Nameservers) == 0 {
			continue
		}
		d := a.Result.DNS
		search := d.Search
		if len(search) == 0 && d.Domain != "" {
			search = []string{d.Domain}
		}
		return &pod.DNS{Servers: d.Nameservers, Search: search, Options: d.Options}
	}
	return nil
}
