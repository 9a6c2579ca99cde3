package main

import (
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"strconv"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/orbit-pods/orbit/metadata"
)

func metadataServiceCommand() *cobra.Command {
	var socket, addr string
	var port int
	cmd := &cobra.Command{
		Use:   "metadata-service [--socket=PATH] [--listen-addr=IP] [--listen-port=18112]",
		Short: "Serve the appc metadata service to pods run with --mds-register",
		Long: `Serve the appc metadata service: pods run with --mds-register are registered
over the unix socket (root only) and their apps read their metadata over TCP
at AC_METADATA_URL. Under systemd, socket activation passes both sockets
(systemd-units/orbit-metadata.socket) and the flags are not used.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ls, activated, err := metadata.Activated()
			if err != nil {
				return err
			}
			if !activated {
				if ls, err = metadata.Listen(socket, net.JoinHostPort(addr, strconv.Itoa(port))); err != nil {
					return err
				}
			}
			srv, err := metadata.NewServer(0)
			if err != nil {
				return err
			}
			srv.Log = log.New(os.Stderr, "metadata-service: ", 0)
			ctx, stop := signal.NotifyContext(cmd.Context(), unix.SIGTERM, unix.SIGINT)
			defer stop()
			fmt.Fprintf(os.Stderr, "metadata-service: registration on %s, metadata on %s\n", ls.Registration.Addr(), ls.Metadata.Addr())
			return srv.Serve(ctx, ls)
		},
	}
	f := cmd.Flags()
	f.StringVar(&socket, "socket", metadata.DefaultSocket, "the registration socket (unix, root only)")
	f.StringVar(&addr, "listen-addr", "0.0.0.0", "address of the metadata API: one pods reach (their network's gateway is the host)")
	f.IntVar(&port, "listen-port", metadata.DefaultPort, "TCP port of the metadata API")
	return cmd
}
