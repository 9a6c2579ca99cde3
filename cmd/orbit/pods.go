package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/orbit-pods/orbit/stage0"
)

func statusCommand(g *globalFlags) *cobra.Command {
	var format string
	var wait, waitReady time.Duration
	cmd := &cobra.Command{
		Use:   "status [--wait[=TIMEOUT]|--wait-ready[=TIMEOUT]] UUID",
		Short: "Show a pod's state, PID and app exit statuses",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(format); err != nil {
				return err
			}
			w, wr := cmd.Flags().Changed("wait"), cmd.Flags().Changed("wait-ready")
			timeout := wait
			if wr {
				timeout = waitReady
			}
			info, err := g.env.Status(cmd.Context(), args[0], w, wr, timeout)
			if err != nil {
				return err
			}
			if format == "json" {
				return printJSON(info)
			}
			fmt.Printf("uuid=%s\nstate=%s\ncreated=%s\n", info.UUID, info.State, info.Created.Format(time.RFC3339Nano))
			if info.PID != 0 {
				fmt.Printf("pid=%d\n", info.PID)
			}
			if l := networksLine(info.Networks); l != "" {
				fmt.Println(l)
			}
			for _, a := range info.Apps {
				if a.ExitCode != nil {
					fmt.Printf("app-%s=%d\n", a.Name, *a.ExitCode)
				}
				if a.OOMKilled {
					fmt.Printf("app-%s-oom-killed=true\n", a.Name)
				}
			}
			return nil
		},
	}
	formatFlag(cmd, &format)
	cmd.Flags().DurationVar(&wait, "wait", 0, "wait until the pod exits (at most TIMEOUT; 0 for ever)")
	cmd.Flags().DurationVar(&waitReady, "wait-ready", 0, "wait until the pod runs (at most TIMEOUT; 0 for ever)")
	cmd.Flags().Lookup("wait").NoOptDefVal = "0s"
	cmd.Flags().Lookup("wait-ready").NoOptDefVal = "0s"
	return cmd
}

func stopCommand(g *globalFlags) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "stop [--force] UUID...",
		Short: "Stop running pods (SIGTERM to the apps; --force kills them at once)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var errs []error
			for _, u := range args {
				pd, err := g.env.Stop(u, force)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				fmt.Println(pd.UUID)
			}
			return errors.Join(errs...)
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "kill the pod's processes instead of asking them to stop")
	return cmd
}

func rmCommand(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "rm UUID...",
		Short: "Remove pods that are not running",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var errs []error
			for _, u := range args {
				if err := g.env.Remove(u); err != nil {
					errs = append(errs, err)
					continue
				}
				fmt.Printf("%q\n", u)
			}
			return errors.Join(errs...)
		},
	}
}

func enterCommand(g *globalFlags) *cobra.Command {
	var app string
	cmd := &cobra.Command{
		Use:   "enter [--app=NAME] UUID [CMD [ARGS...]]",
		Short: "Run a command (default /bin/sh) inside a running app",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.env.Enter(args[0], app, args[1:])
		},
	}
	cmd.Flags().SetInterspersed(false)
	cmd.Flags().StringVar(&app, "app", "", "the app to enter (needed when the pod has several)")
	return cmd
}

func catManifestCommand(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "cat-manifest UUID",
		Short: "Print a pod's manifest (pod.json)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := g.env.Manifest(args[0])
			if err != nil {
				return err
			}
			_, err = os.Stdout.Write(b)
			fmt.Println()
			return err
		},
	}
}

func configCommand(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "config",
		Short: "Print the configuration in effect",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			stage1, err := g.env.Stage1("", "")
			cfg := map[string]any{
				"dataDir":      g.env.DataDir,
				"localConfig":  g.env.LocalConfig,
				"systemConfig": g.env.SystemConfig,
				"stage1": map[string]string{
					"name": "default", "path": stage1, "error": errString(err),
				},
				"stage1ABI": stage0.Stage1ABIVersion,
			}
			return printJSON(cfg)
		},
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
