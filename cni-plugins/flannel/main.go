// Command flannel is a CNI plugin for pods on a flannel overlay. flanneld
// leases this host a subnet of the cluster's network and writes it to
// subnet.env; the plugin reads it and delegates to a plugin that makes the
// interface (bridge by default) with host-local addresses from the lease
// and a route to the whole flannel network, so pods on different hosts
// reach each other over flannel's vxlan.
//
// The configuration given to the delegate is saved per container (in
// dataDir), because DEL must undo what ADD did even when subnet.env has
// changed or gone since.
//
//	{"name": "flannel", "type": "flannel",
//	 "subnetFile": "/run/flannel/subnet.env",   (the default)
//	 "dataDir": "/var/lib/cni/flannel",         (the default)
//	 "delegate": {"type": "bridge", ...},       (optional, merged)
//	 "ipam": {"dataDir": "..."}}                (optional, merged into host-local's)
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
)

const (
	defaultSubnetFile = "/run/flannel/subnet.env"
	defaultDataDir    = "/var/lib/cni/flannel"
)

// netConf is the plugin's configuration.
type netConf struct {
	types.PluginConf
	SubnetFile string         `json:"subnetFile"`
	DataDir    string         `json:"dataDir"`
	Delegate   map[string]any `json:"delegate"`
	// IPAMExtra is the configuration's "ipam", merged into host-local's.
	IPAMExtra map[string]any `json:"ipam"`
}

func loadConf(b []byte) (*netConf, error) {
	n := &netConf{SubnetFile: defaultSubnetFile, DataDir: defaultDataDir}
	if err := json.Unmarshal(b, n); err != nil {
		return nil, fmt.Errorf("parse flannel network configuration: %w", err)
	}
	return n, nil
}

// savedConf is where the delegate's configuration for one attachment is
// kept between ADD and DEL.
func savedConf(dataDir, containerID, ifName string) string {
	return filepath.Join(dataDir, containerID+"-"+ifName)
}

func cmdAdd(args *skel.CmdArgs) error {
	n, err := loadConf(args.StdinData)
	if err != nil {
		return err
	}
	env, err := readSubnetEnv(n.SubnetFile)
	if err != nil {
		return err
	}
	dc, err := delegateConf(n, env, args.StdinData)
	if err != nil {
		return err
	}
	b, err := json.Marshal(dc)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(n.DataDir, 0o700); err != nil {
		return fmt.Errorf("flannel data directory: %w", err)
	}
	saved := savedConf(n.DataDir, args.ContainerID, args.IfName)
	if err := os.WriteFile(saved, b, 0o600); err != nil {
		return fmt.Errorf("save delegate configuration: %w", err)
	}
	res, err := invoke.DelegateAdd(context.TODO(), dc["type"].(string), b, nil)
	if err != nil {
		_ = os.Remove(saved)
		return err
	}
	return types.PrintResult(res, n.CNIVersion)
}

func cmdDel(args *skel.CmdArgs) error {
	n, err := loadConf(args.StdinData)
	if err != nil {
		return err
	}
	saved := savedConf(n.DataDir, args.ContainerID, args.IfName)
	b, err := os.ReadFile(saved)
	if errors.Is(err, os.ErrNotExist) {
		return nil // never added, or deleted already
	}
	if err != nil {
		return err
	}
	var dc map[string]any
	if err := json.Unmarshal(b, &dc); err != nil {
		return fmt.Errorf("saved delegate configuration %s: %w", saved, err)
	}
	typ, _ := dc["type"].(string)
	if err := invoke.DelegateDel(context.TODO(), typ, b, nil); err != nil {
		return err
	}
	return os.Remove(saved)
}

func cmdCheck(args *skel.CmdArgs) error {
	n, err := loadConf(args.StdinData)
	if err != nil {
		return err
	}
	b, err := os.ReadFile(savedConf(n.DataDir, args.ContainerID, args.IfName))
	if err != nil {
		return fmt.Errorf("no saved delegate configuration: %w", err)
	}
	var dc map[string]any
	if err := json.Unmarshal(b, &dc); err != nil {
		return err
	}
	typ, _ := dc["type"].(string)
	return invoke.DelegateCheck(context.TODO(), typ, b, nil)
}

func main() {
	skel.PluginMainFuncs(skel.CNIFuncs{Add: cmdAdd, Del: cmdDel, Check: cmdCheck},
		version.PluginSupports("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"), "Orbit's flannel CNI plugin")
}
