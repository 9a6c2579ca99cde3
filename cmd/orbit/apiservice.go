package main

import (
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"

	"github.com/orbit-pods/orbit/api/server"
)

// DefaultAPISocket is where `orbit api-service` listens unless told.
const DefaultAPISocket = "/run/orbit/api.sock"

func apiServiceCommand(g *globalFlags) *cobra.Command {
	var socket, tcp string
	cmd := &cobra.Command{
		Use:   "api-service [--socket=PATH] [--listen-tcp=127.0.0.1:PORT]",
		Short: "Serve Orbit's read-only gRPC API (pods, images, events, logs)",
		Long: `Serve Orbit's read-only gRPC API (api/v1alpha/api.proto, docs/api.md) on a
unix socket readable by root only, and on TCP when asked, which must be a
loopback address. Under systemd, socket activation passes the socket.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var ls []net.Listener
			passed, err := activation.Listeners()
			if err != nil {
				return fmt.Errorf("socket activation: %w", err)
			}
			for _, l := range passed {
				if l != nil {
					ls = append(ls, l)
				}
			}
			if len(ls) == 0 {
				l, err := listenUnix(socket)
				if err != nil {
					return err
				}
				ls = append(ls, l)
			}
			if tcp != "" {
				host, _, err := net.SplitHostPort(tcp)
				if err != nil {
					return usageError{fmt.Errorf("--listen-tcp %q: %v", tcp, err)}
				}
				if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
					return usageError{fmt.Errorf("--listen-tcp %q: the API has no authentication: only a loopback address", tcp)}
				}
				l, err := net.Listen("tcp", tcp)
				if err != nil {
					return fmt.Errorf("--listen-tcp: %w", err)
				}
				ls = append(ls, l)
			}
			gs := grpc.NewServer()
			(&server.Server{Env: &g.env, Version: Version}).Register(gs)
			errc := make(chan error, len(ls))
			for _, l := range ls {
				fmt.Fprintf(os.Stderr, "api-service: listening on %s\n", l.Addr())
				go func() { errc <- gs.Serve(l) }()
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), unix.SIGTERM, unix.SIGINT)
			defer stop()
			select {
			case <-ctx.Done():
				// Streams (events, followed logs) never end by themselves.
				gs.Stop()
				return nil
			case err := <-errc:
				gs.Stop()
				return err
			}
		},
	}
	f := cmd.Flags()
	f.StringVar(&socket, "socket", DefaultAPISocket, "the API's unix socket (root only)")
	f.StringVar(&tcp, "listen-tcp", "", "also serve on this loopback address and port")
	return cmd
}

// listenUnix listens at path, root only, taking over a socket a dead
// service left but not a live one.
func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	if c, err := net.Dial("unix", path); err == nil {
		c.Close()
		return nil, fmt.Errorf("an API service already listens at %s", path)
	}
	_ = os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}
