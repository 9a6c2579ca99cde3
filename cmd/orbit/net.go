package main

import (
	"strings"

	"github.com/spf13/pflag"

	"github.com/orbit-pods/orbit/stage0"
)

// registerNetFlags adds the pod's network flags to run and prepare.
func registerNetFlags(f *pflag.FlagSet, o *stage0.NetOptions) {
	f.StringSliceVar(&o.Nets, "net", nil, `networks: none (loopback only, the default), host, default, default-restricted, or a name from net.d; NAME:K=V;K=V passes CNI_ARGS (IP=10.1.2.3); repeat or comma-separate for several`)
	f.StringArrayVar(&o.Ports, "port", nil, "forward a host port to the pod: NAME:HOSTPORT (an image's exposed port, 80/tcp is named 80-tcp) or PODPORT[/PROTO]:HOSTPORT (repeat)")
	f.StringVar(&o.ConfigDir, "net-config-dir", "", "directory of CNI *.conflist files, read before <local-config>/net.d and <system-config>/net.d")
	f.StringVar(&o.PluginDir, "net-plugin-dir", "", "directory of the CNI plugin binaries (default "+stage0.DefaultCNIPluginDir+")")
}

// networksLine is status's networks=NAME:IP,... line, addresses without
// their prefix length; empty when the pod has no CNI networks.
func networksLine(ns []stage0.NetworkInfo) string {
	var parts []string
	for _, n := range ns {
		for _, ip := range n.IPs {
			addr, _, _ := strings.Cut(ip, "/")
			parts = append(parts, n.Name+":"+addr)
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "networks=" + strings.Join(parts, ",")
}
