// Command orbit-rebootctl reads and changes the cluster's reboot
// semaphore in etcd (locksmithctl's verbs):
//
//	orbit-rebootctl [--endpoint URLS] [--group G] status
//	orbit-rebootctl lock [MACHINE-ID]      take a slot (default: this machine)
//	orbit-rebootctl unlock [MACHINE-ID]    give one back, e.g. for a dead machine
//	orbit-rebootctl set-max N              allow N machines to reboot at once
package main

import (
	"context"
	"fmt"
	"os"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/orbit-pods/orbit/os/reboot"
)

func main() {
	var endpoint, group string
	var files reboot.TLSFiles
	var lock *reboot.EtcdLock
	root := &cobra.Command{
		Use:           "orbit-rebootctl",
		Short:         "Read and change the cluster's reboot semaphore",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := reboot.ReadConfig(reboot.ConfigFiles...)
			if err != nil {
				return err
			}
			eps := reboot.Endpoints(endpoint)
			if len(eps) == 0 {
				eps = cfg.Endpoints
			}
			if len(eps) == 0 {
				eps = []string{"http://127.0.0.1:2379"}
			}
			if !cmd.Flags().Changed("group") {
				group = cfg.Group
			}
			// The TLS files of update.conf go with its endpoints.
			if files.Empty() && len(reboot.Endpoints(endpoint)) == 0 {
				files = cfg.TLS
			}
			c, err := reboot.DialEtcd(eps, files)
			if err != nil {
				return err
			}
			lock = reboot.NewEtcdLock(c, group)
			return nil
		},
	}
	root.PersistentFlags().StringVar(&endpoint, "endpoint", "", "etcd client URLs, comma-separated (default: LOCKSMITHD_ENDPOINT of update.conf, else http://127.0.0.1:2379)")
	root.PersistentFlags().StringVar(&group, "group", "", "reboot group (default: LOCKSMITHD_GROUP of update.conf, else the default group)")
	root.PersistentFlags().StringVar(&files.CAFile, "etcd-cafile", "", "CA certificate that signed etcd's (PEM; default: LOCKSMITHD_ETCD_CAFILE with update.conf's endpoints)")
	root.PersistentFlags().StringVar(&files.CertFile, "etcd-certfile", "", "client certificate for etcd (PEM; default: LOCKSMITHD_ETCD_CERTFILE)")
	root.PersistentFlags().StringVar(&files.KeyFile, "etcd-keyfile", "", "key of the client certificate (PEM; default: LOCKSMITHD_ETCD_KEYFILE)")

	idArg := func(args []string) (string, error) {
		if len(args) == 1 {
			return args[0], nil
		}
		return reboot.MachineID()
	}
	root.AddCommand(&cobra.Command{
		Use:   "status",
		Short: "Show the free slots, the max and the holders",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := lock.Get(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Printf("Available: %d\nMax: %d\n", s.Semaphore, s.Max)
			if len(s.Holders) > 0 {
				fmt.Printf("\nMACHINE ID\n")
				for _, h := range s.Holders {
					fmt.Println(h)
				}
			}
			return nil
		},
	}, &cobra.Command{
		Use:   "lock [MACHINE-ID]",
		Short: "Take a slot for a machine (this one by default)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := idArg(args)
			if err != nil {
				return err
			}
			return lock.Lock(cmd.Context(), id)
		},
	}, &cobra.Command{
		Use:   "unlock [MACHINE-ID]",
		Short: "Give back a machine's slot (this one by default)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := idArg(args)
			if err != nil {
				return err
			}
			return lock.Unlock(cmd.Context(), id)
		},
	}, &cobra.Command{
		Use:   "set-max N",
		Short: "Set how many machines may reboot at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := strconv.Atoi(args[0])
			if err != nil {
				return fmt.Errorf("set-max %q: not a number", args[0])
			}
			return lock.SetMax(cmd.Context(), n)
		},
	})
	if err := root.ExecuteContext(context.Background()); err != nil {
		fmt.Fprintf(os.Stderr, "orbit-rebootctl: %v\n", err)
		os.Exit(1)
	}
}
