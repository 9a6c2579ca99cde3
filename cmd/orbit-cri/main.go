// orbit-cri serves the kubelet's Container Runtime Interface over Orbit
// (package cri): pod sandboxes are sandbox pods, containers their apps.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"

	"github.com/orbit-pods/orbit/cri"
	"github.com/orbit-pods/orbit/stage0"
)

// Version is set by the build.
var Version = "dev"

// closeInherited marks the descriptors orbit-cri inherited (beyond stdio)
// close-on-exec: the pods it starts outlive it, and must not hold what its
// parent left open (a lock, a pipe someone waits on).
func closeInherited() {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			unix.CloseOnExec(fd)
		}
	}
}

func main() {
	closeInherited()
	var (
		env      stage0.Env
		cfg      cri.Config
		listen   string
		mirrors  []string
		insecure bool
	)
	root := &cobra.Command{
		Use:           "orbit-cri",
		Short:         "Serve the kubelet's CRI (runtime.v1) on a unix socket, with Orbit pods",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       Version,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.Env, cfg.InsecureHTTP, cfg.Version = &env, insecure, Version
			cfg.Mirrors = cri.Mirrors{}
			for _, m := range mirrors {
				host, mirror, err := cri.ParseMirror(m)
				if err != nil {
					return err
				}
				cfg.Mirrors[host] = mirror
			}
			self, err := os.Executable()
			if err != nil {
				return err
			}
			cfg.Self = self
			cfg.SelfArgs = []string{"--dir=" + env.DataDir, "--local-config=" + env.LocalConfig, "--system-config=" + env.SystemConfig}
			if env.Debug {
				cfg.SelfArgs = append(cfg.SelfArgs, "--debug")
			}
			return serve(cmd.Context(), listen, cfg)
		},
	}
	f := root.PersistentFlags()
	f.StringVar(&env.DataDir, "dir", "/var/lib/orbit", "Orbit's data directory (images and pods)")
	f.StringVar(&env.LocalConfig, "local-config", "/etc/orbit", "local configuration directory")
	f.StringVar(&env.SystemConfig, "system-config", "/usr/lib/orbit", "system configuration directory")
	f.BoolVar(&env.Debug, "debug", false, "pods' supervisors log what they do")
	lf := root.Flags()
	lf.StringVar(&listen, "listen", "/run/orbit/cri.sock", "unix socket to serve the CRI on")
	lf.StringVar(&cfg.Stage1Path, "stage1-path", "", "stage1 binary (default: Orbit's configuration)")
	lf.StringVar(&cfg.Network, "cni-network", "default", `CNI network of pods not in the node's network ("none": loopback only)`)
	lf.StringVar(&cfg.NetConfigDir, "net-config-dir", "", "directory of CNI *.conflist files, read before <local-config>/net.d")
	lf.StringVar(&cfg.NetPluginDir, "net-plugin-dir", "", "directory of the CNI plugins")
	lf.StringArrayVar(&mirrors, "registry-mirror", nil, "HOST=MIRROR[/PREFIX]: fetch images of registry HOST from MIRROR (repeat)")
	lf.BoolVar(&insecure, "insecure-http", false, "allow registries (mirrors) served over plain HTTP")
	lf.StringVar(&cfg.StreamAddress, "stream-address", "127.0.0.1:0", "host:port of the exec/port-forward streaming server")
	root.AddCommand(&cobra.Command{
		Use:    cri.RunPodVerb + " UUID",
		Short:  "Run a prepared pod: this process becomes its supervisor (orbit-cri runs it)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return env.RunPreparedUUID(args[0])
		},
	})
	ctx, stop := signal.NotifyContext(context.Background(), unix.SIGTERM, unix.SIGINT)
	defer stop()
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "orbit-cri:", err)
		os.Exit(1)
	}
}

func serve(ctx context.Context, listen string, cfg cri.Config) error {
	srv, err := cri.New(cfg)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(listen), 0o755); err != nil {
		return err
	}
	if err := os.Remove(listen); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	l, err := net.Listen("unix", listen)
	if err != nil {
		return err
	}
	if err := os.Chmod(listen, 0o600); err != nil {
		return err
	}
	g := grpc.NewServer()
	srv.Register(g)
	errc := make(chan error, 2)
	go func() { errc <- g.Serve(l) }()
	go func() { errc <- srv.Serve(ctx) }()
	select {
	case <-ctx.Done():
		g.GracefulStop()
		return nil
	case err := <-errc:
		g.Stop()
		return err
	}
}
