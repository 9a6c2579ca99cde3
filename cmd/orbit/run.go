package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/orbit-pods/orbit/stage0"
)

func runCommand(g *globalFlags) *cobra.Command {
	var o stage0.PrepareOptions
	cmd := &cobra.Command{
		Use:   "run [flags] IMAGE [--exec=CMD] [--user=U] [--group=G] [--name=NAME] [-- ARGS...] [--- IMAGE ...]",
		Short: "Run a pod in the foreground: this process becomes its supervisor",
		Long: `Run a pod of one or more apps. Each app is an image (a name in the store, or
a source such as oci-archive:FILE that is fetched first) followed by its own
flags and, after --, its arguments; --- separates apps.

orbit run execs stage1, so the process that ran it supervises the pod and
exits with the app's exit status (125 when orbit itself fails).`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			apps, err := parseApps(args)
			if err != nil {
				return usageError{err}
			}
			o.Apps = apps
			pd, m, err := g.env.Prepare(cmd.Context(), o)
			if err != nil {
				fmt.Fprintln(os.Stderr, "orbit:", err)
				return exitError{runtimeErrorStatus}
			}
			if err := g.env.RunPrepared(pd, m.Stage1); err != nil {
				fmt.Fprintln(os.Stderr, "orbit:", err)
				return exitError{runtimeErrorStatus}
			}
			return nil // not reached: stage1 replaced this process
		},
	}
	f := cmd.Flags()
	f.SetInterspersed(false) // flags after the image are the app's
	f.StringVar(&o.Hostname, "hostname", "", "pod hostname (default orbit-<uuid prefix>)")
	f.DurationVar(&o.StopTimeout, "stop-timeout", stage0.DefaultStopTimeout, "how long apps get to exit after SIGTERM before they are killed")
	f.StringVar(&o.Stage1Name, "stage1-name", "", "stage1 flavor, as configured in stage1.d")
	f.StringVar(&o.Stage1Path, "stage1-path", "", "path of the stage1 binary to use")
	return cmd
}

// parseApps splits `IMAGE [app flags] [-- args] [--- IMAGE ...]`.
func parseApps(args []string) ([]stage0.AppOptions, error) {
	var chunks [][]string
	cur := []string{}
	for _, a := range args {
		if a == "---" {
			chunks = append(chunks, cur)
			cur = []string{}
			continue
		}
		cur = append(cur, a)
	}
	chunks = append(chunks, cur)
	var out []stage0.AppOptions
	for _, c := range chunks {
		if len(c) == 0 {
			return nil, fmt.Errorf("empty app between ---")
		}
		if c[0] == "" || c[0][0] == '-' {
			return nil, fmt.Errorf("expected an image, got %q", c[0])
		}
		ao := stage0.AppOptions{Image: c[0]}
		fs := pflag.NewFlagSet(c[0], pflag.ContinueOnError)
		fs.SetInterspersed(false)
		fs.SetOutput(nilWriter{})
		fs.StringVar(&ao.Exec, "exec", "", "command to run instead of the image's entrypoint")
		fs.StringVar(&ao.User, "user", "", "user to run as (name or uid)")
		fs.StringVar(&ao.Group, "group", "", "group to run as (name or gid)")
		fs.StringVar(&ao.Name, "name", "", "app name (default from the image name)")
		if err := fs.Parse(c[1:]); err != nil {
			return nil, fmt.Errorf("app %s: %w", c[0], err)
		}
		rest := fs.Args()
		if len(rest) > 0 && fs.ArgsLenAtDash() != 0 {
			return nil, fmt.Errorf("app %s: unexpected argument %q (app arguments go after --)", c[0], rest[0])
		}
		if fs.ArgsLenAtDash() == 0 {
			ao.Args, ao.HasArgs = rest, true
		}
		out = append(out, ao)
	}
	return out, nil
}

type nilWriter struct{}

func (nilWriter) Write(p []byte) (int, error) { return len(p), nil }

func gcCommand(g *globalFlags) *cobra.Command {
	o := stage0.GCOptions{Log: os.Stdout}
	cmd := &cobra.Command{
		Use:   "gc",
		Short: "Remove exited pods and pods whose supervisor died",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.env.GC(cmd.Context(), o)
		},
	}
	cmd.Flags().DurationVar(&o.GracePeriod, "grace-period", 30*time.Minute, "how long exited pods are kept")
	cmd.Flags().DurationVar(&o.ExpirePrepared, "expire-prepared", 24*time.Hour, "how long prepared pods that never ran are kept")
	return cmd
}
