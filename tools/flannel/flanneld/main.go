// Command orbit-flanneld is flanneld reduced to the etcd subnet manager and the
// vxlan backend, for Orbit's functional tests and for hosts that want flannel
// without building its full daemon.
//
// It exists because `go install github.com/flannel-io/flannel@v0.28.10` fails
// here: flannel's main package imports its tencentvpc backend, whose
// tencentcloud SDK the Go module proxy refuses. flannel's own packages build
// fine, so this is our own thin wiring of them; the subnet leasing, vxlan
// routing, traffic rules and subnet.env are flannel's code, unchanged.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/flannel-io/flannel/pkg/backend"
	_ "github.com/flannel-io/flannel/pkg/backend/vxlan" // registers "vxlan"
	"github.com/flannel-io/flannel/pkg/ip"
	"github.com/flannel-io/flannel/pkg/ipmatch"
	"github.com/flannel-io/flannel/pkg/subnet"
	"github.com/flannel-io/flannel/pkg/subnet/etcd"
	"github.com/flannel-io/flannel/pkg/trafficmngr"
	"github.com/flannel-io/flannel/pkg/trafficmngr/iptables"
	"github.com/flannel-io/flannel/pkg/trafficmngr/nftables"
)

type options struct {
	endpoints   string
	prefix      string
	subnetFile  string
	iface       string
	ipMasq      bool
	renewMargin int
	resync      int
}

func main() {
	var o options
	flag.StringVar(&o.endpoints, "etcd-endpoints", "http://127.0.0.1:2379", "comma-separated etcd endpoints")
	flag.StringVar(&o.prefix, "etcd-prefix", "/coreos.com/network", "etcd prefix of the network config and leases")
	flag.StringVar(&o.subnetFile, "subnet-file", "/run/flannel/subnet.env", "where to write this host's subnet (read by the flannel CNI plugin)")
	flag.StringVar(&o.iface, "iface", "", "interface or IP address for inter-host traffic (default: the default route's interface)")
	flag.BoolVar(&o.ipMasq, "ip-masq", false, "masquerade traffic leaving the flannel network")
	flag.IntVar(&o.renewMargin, "subnet-lease-renew-margin", 60, "minutes before expiry to renew the subnet lease")
	flag.IntVar(&o.resync, "iptables-resync", 5, "seconds between checks of the traffic rules")
	flag.Parse()
	if err := flagsFromEnv(flag.CommandLine); err != nil {
		fmt.Fprintln(os.Stderr, "orbit-flanneld:", err)
		os.Exit(2)
	}

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "orbit-flanneld:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	// Renewing the subnet of a previous run keeps pods' addresses stable
	// across restarts, as flanneld does.
	prevSubnet := readSubnetFile(o.subnetFile, "FLANNEL_SUBNET")
	sm, err := etcd.NewLocalManager(ctx, &etcd.EtcdConfig{
		Endpoints: strings.Split(o.endpoints, ","),
		Prefix:    o.prefix,
	}, prevSubnet, ip.IP6Net{}, o.renewMargin)
	if err != nil {
		return fmt.Errorf("creating the etcd subnet manager for %s: %w", o.endpoints, err)
	}

	config, err := waitForConfig(ctx, sm)
	if err != nil {
		return err
	}
	if config.EnableIPv6 {
		return errors.New("the network config enables IPv6, which orbit-flanneld does not support")
	}

	stack, err := ipmatch.GetIPFamily(true, false)
	if err != nil {
		return fmt.Errorf("choosing the IP family: %w", err)
	}
	ext, err := ipmatch.LookupExtIface(o.iface, "", "", stack, ipmatch.PublicIPOpts{})
	if err != nil {
		return fmt.Errorf("finding the interface for inter-host traffic (%q): %w", o.iface, err)
	}

	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	be, err := backend.NewManager(ctx, sm, ext).GetBackend(config.BackendType)
	if err != nil {
		return fmt.Errorf("getting backend %q (only vxlan is built in): %w", config.BackendType, err)
	}
	bn, err := be.RegisterNetwork(ctx, &wg, config)
	if err != nil {
		return fmt.Errorf("registering the %s network: %w", config.BackendType, err)
	}

	var tm trafficmngr.TrafficManager = &iptables.IPTablesManager{}
	if config.EnableNFTables {
		tm = &nftables.NFTablesManager{}
	}
	if err := tm.Init(ctx); err != nil {
		return fmt.Errorf("initialising traffic rules: %w", err)
	}
	if o.ipMasq {
		prevNetwork := readSubnetFile(o.subnetFile, "FLANNEL_NETWORK")
		if err := tm.SetupAndEnsureMasqRules(ctx, config.Network, prevSubnet, prevNetwork,
			ip.IP6Net{}, ip.IP6Net{}, ip.IP6Net{}, bn.Lease(), o.resync, false); err != nil {
			return fmt.Errorf("setting up masquerading: %w", err)
		}
	}
	// Hosts whose FORWARD policy is DROP still pass the flannel network.
	tm.SetupAndEnsureForwardRules(ctx, config.Network, ip.IP6Net{}, o.resync)

	if err := sm.HandleSubnetFile(o.subnetFile, config, o.ipMasq, bn.Lease().Subnet, bn.Lease().IPv6Subnet, bn.MTU()); err != nil {
		return fmt.Errorf("writing %s: %w", o.subnetFile, err)
	}
	fmt.Fprintf(os.Stderr, "orbit-flanneld: subnet %s on %s, wrote %s\n", bn.Lease().Subnet, ext.Iface.Name, o.subnetFile)
	// Ready for a Type=notify unit (as flanneld is) once subnet.env is
	// there for the CNI plugin; without NOTIFY_SOCKET this does nothing.
	_, _ = daemon.SdNotify(false, daemon.SdNotifyReady)

	wg.Add(1)
	go func() {
		defer wg.Done()
		bn.Run(ctx)
	}()
	if err := sm.CompleteLease(ctx, bn.Lease(), &wg); err != nil && ctx.Err() == nil {
		return fmt.Errorf("keeping the subnet lease: %w", err)
	}
	return nil
}

// waitForConfig retries until the network config is in etcd: hosts may start
// before whoever writes it.
func waitForConfig(ctx context.Context, sm subnet.Manager) (*subnet.Config, error) {
	for {
		config, err := sm.GetNetworkConfig(ctx)
		if err == nil && config != nil {
			return config, nil
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "orbit-flanneld: waiting for the network config:", err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for the network config: %w", ctx.Err())
		case <-time.After(time.Second):
		}
	}
}

// readSubnetFile returns key's network from a subnet.env, or the zero network
// when there is none.
func readSubnetFile(path, key string) ip.IP4Net {
	var n ip.IP4Net
	data, err := os.ReadFile(path)
	if err != nil {
		return n
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, key+"="); ok {
			if err := n.UnmarshalJSON([]byte(`"` + strings.TrimSpace(v) + `"`)); err != nil {
				return ip.IP4Net{}
			}
		}
	}
	return n
}

// flagsFromEnv sets each flag not given on the command line from
// FLANNELD_<NAME> (upper case, - as _), as flanneld does, so that units
// written for flanneld (FLANNELD_ETCD_ENDPOINTS, ...) configure this one.
func flagsFromEnv(fs *flag.FlagSet) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		key := "FLANNELD_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		v := os.Getenv(key)
		if v == "" || given[f.Name] || err != nil { // flanneld ignores empty ones too
			return
		}
		if serr := f.Value.Set(v); serr != nil {
			err = fmt.Errorf("%s=%q: %w", key, v, serr)
		}
	})
	return err
}
