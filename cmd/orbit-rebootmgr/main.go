// Command orbit-rebootmgr is the host OS's reboot manager (locksmith's
// job): it reboots the machine when /run/reboot-required appears, by the
// strategy and window in update.conf, holding a slot of the cluster's etcd
// semaphore across the reboot when the strategy is etcd-lock.
//
//	orbit-rebootmgr [--config FILE]... [--machine-id ID] [--reboot-command CMD]
//	orbit-rebootmgr fleetlock --listen ADDR --endpoint URL[,URL...]
//
// The second form serves the same semaphores over the FleetLock HTTP
// protocol, for Zincati-style clients. docs/reboot.md has the details.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/orbit-pods/orbit/os/reboot"
)

type list []string

func (l *list) String() string     { return fmt.Sprint(*l) }
func (l *list) Set(s string) error { *l = append(*l, s); return nil }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if len(os.Args) > 1 && os.Args[1] == "fleetlock" {
		err = fleetlock(ctx, os.Args[2:])
	} else {
		err = agent(ctx, os.Args[1:])
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(os.Stderr, "orbit-rebootmgr: %v\n", err)
		os.Exit(1)
	}
}

func agent(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("orbit-rebootmgr", flag.ExitOnError)
	var configs list
	fs.Var(&configs, "config", "update.conf to read (repeat; later override earlier; default "+fmt.Sprint(reboot.ConfigFiles)+")")
	machineID := fs.String("machine-id", "", "this machine's ID (default: /etc/machine-id)")
	required := fs.String("reboot-required", reboot.RebootRequired, "file whose existence asks for a reboot")
	status := fs.String("update-status", reboot.UpdateStatus, "the update agent's status file, for the log")
	command := fs.String("reboot-command", envOr("ORBIT_REBOOT_COMMAND", "systemctl reboot"),
		"shell command that reboots the machine (env ORBIT_REBOOT_COMMAND)")
	interval := fs.Duration("interval", 10*time.Second, "how often to look for the file and retry the semaphore")
	_ = fs.Parse(args)
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if len(configs) == 0 {
		configs = reboot.ConfigFiles
	}
	cfg, err := reboot.ReadConfig(configs...)
	if err != nil {
		return err
	}
	id := *machineID
	if id == "" {
		if id, err = reboot.MachineID(); err != nil {
			return err
		}
	}
	logger := log.New(os.Stderr, "", 0)
	a := &reboot.Agent{
		MachineID:      id,
		Strategy:       cfg.Strategy,
		Window:         cfg.Window,
		RebootRequired: *required,
		StatusFile:     *status,
		Interval:       *interval,
		Log:            logger,
		Reboot: func(ctx context.Context) error {
			// The command runs to its end even if we are told to stop:
			// a reboot half-asked is worse than one asked.
			c := exec.Command("/bin/sh", "-c", *command)
			c.Env = append(os.Environ(), "ORBIT_MACHINE_ID="+id)
			c.Stdout, c.Stderr = os.Stderr, os.Stderr
			if err := c.Run(); err != nil {
				return fmt.Errorf("reboot command %q: %w", *command, err)
			}
			return nil
		},
	}
	if cfg.Strategy == reboot.StrategyEtcdLock {
		c, err := reboot.DialEtcd(cfg.Endpoints, cfg.TLS)
		if err != nil {
			return err
		}
		defer c.Close()
		a.Locker = reboot.NewEtcdLock(c, cfg.Group)
	}
	return a.Run(ctx)
}

func fleetlock(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("orbit-rebootmgr fleetlock", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:9876", "address to serve FleetLock on")
	endpoint := fs.String("endpoint", "http://127.0.0.1:2379", "etcd client URLs, comma-separated")
	var files reboot.TLSFiles
	fs.StringVar(&files.CAFile, "etcd-cafile", "", "CA certificate that signed etcd's (PEM), for https endpoints")
	fs.StringVar(&files.CertFile, "etcd-certfile", "", "client certificate for etcd (PEM)")
	fs.StringVar(&files.KeyFile, "etcd-keyfile", "", "key of the client certificate (PEM)")
	_ = fs.Parse(args)
	c, err := reboot.DialEtcd(reboot.Endpoints(*endpoint), files)
	if err != nil {
		return err
	}
	defer c.Close()
	logger := log.New(os.Stderr, "", 0)
	srv := &http.Server{
		Handler: &reboot.FleetLockHandler{
			Locker: func(group string) reboot.Locker { return reboot.NewEtcdLock(c, group) },
			Log:    logger,
		},
		ReadHeaderTimeout: 10 * time.Second,
	}
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("fleetlock: %w", err)
	}
	// The address on stdout, so a caller that asked for port 0 learns it.
	fmt.Printf("listening %s\n", l.Addr())
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("fleetlock: %w", err)
	}
	return nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
