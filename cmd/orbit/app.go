package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/orbit-pods/orbit/pod"
	"github.com/orbit-pods/orbit/pod/state"
	"github.com/orbit-pods/orbit/stage0"
)

// prepareSandbox makes the pod of `run --sandbox`: the pod flags, no images.
func (pf *podFlags) prepareSandbox(cmd *cobra.Command, g *globalFlags, args []string) (*state.Pod, *pod.Manifest, error) {
	if len(args) > 0 || pf.podManifest != "" {
		return nil, nil, usageError{errors.New("--sandbox takes no images or --pod-manifest: add apps with `orbit app add`")}
	}
	if pf.o.Stage1Name != "" && pf.o.Stage1Name != pod.FlavorDefault || pf.o.Interactive {
		return nil, nil, usageError{errors.New("a sandbox pod runs in the default flavor, not interactive")}
	}
	o, err := pf.options(nil)
	if err != nil {
		return nil, nil, usageError{err}
	}
	o, err = pf.sandboxOptions(o)
	if err != nil {
		return nil, nil, usageError{err}
	}
	return g.env.PrepareSandbox(cmd.Context(), stage0.SandboxOptions{
		Hostname:      o.Hostname,
		StopTimeout:   o.StopTimeout,
		Stage1Path:    o.Stage1Path,
		DNS:           o.DNS,
		Hosts:         o.HostsEntries,
		Volumes:       o.Volumes,
		Net:           o.Net,
		UserNamespace: o.UserNamespace,
	})
}

// sandboxOptions are the pod flags without apps.
func (pf *podFlags) sandboxOptions(o stage0.PrepareOptions) (stage0.PrepareOptions, error) {
	if len(pf.setEnv)+len(pf.setEnvFile) > 0 || pf.inheritEnv {
		return o, errors.New("--sandbox: environment flags are per app (orbit app add --set-env)")
	}
	return o, nil
}

func appCommand(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "app",
		Short: "Add, start, stop and remove apps of a running sandbox pod (orbit run --sandbox)",
	}
	var setEnv []string
	var stdin, stdinOnce, noStdin bool
	add := &cobra.Command{
		Use:   "add [--set-env=K=V] UUID " + appUsage,
		Short: "Add an app to a running sandbox pod, created but not started; prints its name",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			apps, err := parseApps(args[1:])
			if err != nil {
				return usageError{err}
			}
			if len(apps) != 1 {
				return usageError{fmt.Errorf("app add adds one app, got %d", len(apps))}
			}
			a, err := g.env.AddApp(cmd.Context(), args[0], apps[0], stage0.AddOptions{Env: setEnv, Stdin: stdin || stdinOnce, StdinOnce: stdinOnce})
			if err != nil {
				return err
			}
			fmt.Println(a.Name)
			return nil
		},
	}
	add.Flags().SetInterspersed(false)
	add.Flags().StringArrayVar(&setEnv, "set-env", nil, "environment variable K=V for the app (repeat)")
	add.Flags().BoolVar(&stdin, "stdin", false, "give the app a stdin that `orbit app attach` writes to (else /dev/null)")
	add.Flags().BoolVar(&stdinOnce, "stdin-once", false, "like --stdin, closed when the first attached client's input ends")
	attach := &cobra.Command{
		Use:   "attach UUID APP",
		Short: "Attach to a running app: its output from now on; this command's stdin to the app's (if added with --stdin)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			pd, err := g.env.FindPod(args[0])
			if err != nil {
				return err
			}
			st, err := pod.ReadAppStatus(pd.Dir(), args[1])
			if errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("pod %s has no app %q", pd.UUID, args[1])
			}
			if err != nil {
				return err
			}
			if st.State != pod.AppRunning {
				return fmt.Errorf("app %s is %s: only a running app can be attached to", args[1], st.State)
			}
			var in io.Reader = os.Stdin
			if noStdin {
				in = nil
			}
			err = pod.Attach(cmd.Context(), pd.Dir(), args[1], in, os.Stdout, os.Stderr)
			if errors.Is(err, context.Canceled) {
				return nil // ^C: detached, the app runs on
			}
			return err
		},
	}
	simple := func(use, short, op string) *cobra.Command {
		var timeout time.Duration
		c := &cobra.Command{
			Use:   use + " UUID APP",
			Short: short,
			Args:  cobra.ExactArgs(2),
			RunE: func(cmd *cobra.Command, args []string) error {
				return g.env.AppCommand(cmd.Context(), args[0], &pod.ControlRequest{Op: op, Name: args[1], Timeout: pod.Duration(timeout)})
			},
		}
		if op == pod.OpStop {
			c.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "time between SIGTERM and SIGKILL")
		}
		return c
	}
	var format string
	list := &cobra.Command{
		Use:   "list UUID",
		Short: "List a sandbox pod's apps and their states",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(format); err != nil {
				return err
			}
			pd, err := g.env.FindPod(args[0])
			if err != nil {
				return err
			}
			m, err := pod.ReadManifest(pd.Dir().ManifestFile())
			if err != nil {
				return err
			}
			sts, err := stage0.AppStatuses(pd.Dir(), m)
			if err != nil {
				return err
			}
			if format == "json" {
				return printJSON(sts)
			}
			w := tabwriter.NewWriter(os.Stdout, 0, 8, 2, ' ', 0)
			fmt.Fprintln(w, "APP\tSTATE\tEXIT\tCREATED")
			for _, st := range sts {
				exit := "-"
				if st.State == pod.AppExited {
					exit = fmt.Sprint(st.ExitCode)
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", st.Name, st.State, exit, ago(st.Created))
			}
			return w.Flush()
		},
	}
	list.Flags().StringVar(&format, "format", "", "output format: json")
	attach.Flags().BoolVar(&noStdin, "no-stdin", false, "do not attach this command's stdin (the app's stdin is left open)")
	cmd.AddCommand(add, attach,
		simple("start", "Start a created app", pod.OpStart),
		simple("stop", "Stop a running app (SIGTERM, then SIGKILL after --timeout)", pod.OpStop),
		simple("rm", "Remove an app, stopping it first", pod.OpRemove),
		list)
	return cmd
}
