package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
)

// subnetEnv is what flanneld wrote in subnet.env.
type subnetEnv struct {
	Network *net.IPNet // FLANNEL_NETWORK: the whole overlay
	Subnet  *net.IPNet // FLANNEL_SUBNET: this host's lease, its gateway address
	MTU     int        // FLANNEL_MTU
	IPMasq  bool       // FLANNEL_IPMASQ: flanneld masquerades itself
}

func readSubnetEnv(path string) (*subnetEnv, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read flannel subnet file (is flanneld running?): %w", err)
	}
	defer f.Close()
	env := &subnetEnv{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok {
			continue
		}
		switch k {
		case "FLANNEL_NETWORK":
			_, env.Network, err = net.ParseCIDR(v)
		case "FLANNEL_SUBNET":
			var ip net.IP
			ip, env.Subnet, err = net.ParseCIDR(v)
			if err == nil {
				env.Subnet.IP = ip // keep the gateway address flanneld gave
			}
		case "FLANNEL_MTU":
			env.MTU, err = strconv.Atoi(v)
		case "FLANNEL_IPMASQ":
			env.IPMasq, err = strconv.ParseBool(v)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", path, k, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if env.Network == nil || env.Subnet == nil {
		return nil, fmt.Errorf("%s: FLANNEL_NETWORK or FLANNEL_SUBNET missing", path)
	}
	return env, nil
}

// delegateConf is the delegate plugin's configuration: the flannel
// configuration's "delegate" over defaults from subnet.env, with host-local
// addresses from the lease and a route to the whole flannel network.
func delegateConf(n *netConf, env *subnetEnv, raw []byte) (map[string]any, error) {
	dc := map[string]any{
		"type":      "bridge",
		"isGateway": true,
		"ipMasq":    !env.IPMasq,
	}
	if env.MTU > 0 {
		dc["mtu"] = env.MTU
	}
	for k, v := range n.Delegate {
		dc[k] = v
	}
	dc["name"] = n.Name
	dc["cniVersion"] = n.CNIVersion
	if _, ok := dc["type"].(string); !ok {
		return nil, fmt.Errorf("flannel: delegate type is not a string")
	}
	ipam := map[string]any{}
	for k, v := range n.IPAMExtra {
		ipam[k] = v
	}
	ipam["type"] = "host-local"
	lease := &net.IPNet{IP: env.Subnet.IP.Mask(env.Subnet.Mask), Mask: env.Subnet.Mask}
	ipam["ranges"] = [][]map[string]string{{{"subnet": lease.String(), "gateway": env.Subnet.IP.String()}}}
	ipam["routes"] = []map[string]string{{"dst": env.Network.String()}}
	dc["ipam"] = ipam
	// A chained plugin's prevResult and runtimeConfig pass through.
	var rest map[string]json.RawMessage
	if err := json.Unmarshal(raw, &rest); err == nil {
		for _, k := range []string{"prevResult", "runtimeConfig", "args"} {
			if v, ok := rest[k]; ok {
				dc[k] = v
			}
		}
	}
	return dc, nil
}
