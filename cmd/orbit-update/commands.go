package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/orbit-pods/orbit/os/slot"
	"github.com/orbit-pods/orbit/os/update"
)

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func statusCmd() *cobra.Command {
	var m machineFlags
	c := &cobra.Command{
		Use:   "status",
		Short: "Show the slots, the running version and any pending update",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, err := m.agent(false)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "version:  %s (slot %s)\ngroup:    %s\nserver:   %s\n", a.Version, a.Target.Active, a.Config.Group, a.Config.Server)
			sa, sb, err := a.Target.Slots.Read()
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "slot %s\nslot %s\n", sa, sb)
			if la, lb, err := a.Target.Slots.Loader(); err == nil {
				fmt.Fprintf(w, "loader %s\nloader %s\n", la, lb)
			} else {
				fmt.Fprintf(w, "loader: %v\n", err)
			}
			st, err := update.LoadState(m.stateDir)
			if err != nil {
				return err
			}
			if p := st.Pending; p != nil {
				fmt.Fprintf(w, "pending:  %s in slot %s, applied %s\n", p.Version, p.Slot, p.Applied.Format(time.RFC3339))
			}
			for _, v := range st.Failed {
				fmt.Fprintf(w, "rolled back: %s\n", v)
			}
			if s, err := update.ReadStatus(m.statusFile); err == nil {
				fmt.Fprintf(w, "state:    %s\n", s["STATE"])
				if e := s["LAST_ERROR"]; e != "" {
					fmt.Fprintf(w, "error:    %s\n", e)
				}
			}
			return nil
		},
	}
	m.register(c.Flags())
	return c
}

func checkCmd() *cobra.Command {
	var m machineFlags
	c := &cobra.Command{
		Use:   "check",
		Short: "Ask the update server whether a newer version is offered",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, err := m.agent(false)
			if err != nil {
				return err
			}
			ctx, cancel := signalContext()
			defer cancel()
			if _, err := a.Reconcile(ctx); err != nil {
				a.Log.Printf("%v", err)
			}
			o, err := a.Check(ctx)
			if err != nil {
				return err
			}
			if o == nil {
				fmt.Fprintf(cmd.OutOrStdout(), "no update: %s is current in group %s\n", a.Version, a.Config.Group)
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "update available: %s (%d bytes, sha256 %s) at %s\n", o.Version, o.Size, hex.EncodeToString(o.SHA256), o.URL)
			return nil
		},
	}
	m.register(c.Flags())
	return c
}

func applyCmd() *cobra.Command {
	var (
		m    machineFlags
		file string
		sha  string
	)
	c := &cobra.Command{
		Use:   "apply",
		Short: "Download the offered update (or read --payload) and write it to the passive slot",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, err := m.agent(true)
			if err != nil {
				return err
			}
			ctx, cancel := signalContext()
			defer cancel()
			if file == "" {
				v, err := a.Update(ctx)
				if err != nil {
					return err
				}
				if v == "" {
					fmt.Fprintln(cmd.OutOrStdout(), "nothing to apply")
				} else {
					fmt.Fprintf(cmd.OutOrStdout(), "applied %s to slot %s; reboot to use it\n", v, slot.Other(a.Target.Active))
				}
				return nil
			}
			var want []byte
			if sha != "" {
				if want, err = hex.DecodeString(sha); err != nil || len(want) != 32 {
					return fmt.Errorf("--sha256 %q is not a hex SHA-256", sha)
				}
			}
			f, err := os.Open(file)
			if err != nil {
				return fmt.Errorf("open payload: %w", err)
			}
			defer f.Close()
			if err := a.Install(ctx, f, want, ""); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "applied %s to slot %s; reboot to use it\n", file, slot.Other(a.Target.Active))
			return nil
		},
	}
	m.register(c.Flags())
	c.Flags().StringVar(&file, "payload", "", "apply this payload file instead of asking the server")
	c.Flags().StringVar(&sha, "sha256", "", "with --payload: the payload's expected SHA-256 (hex)")
	return c
}

func agentCmd() *cobra.Command {
	var (
		m     machineFlags
		sched update.Schedule
	)
	c := &cobra.Command{
		Use:   "agent",
		Short: "Run the update agent: check soon after boot, then on a jittered interval",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, err := m.agent(true)
			if err != nil {
				return err
			}
			ctx, cancel := signalContext()
			defer cancel()
			err = a.Run(ctx, sched)
			if ctx.Err() != nil {
				return nil
			}
			return err
		},
	}
	m.register(c.Flags())
	c.Flags().DurationVar(&sched.BootDelay, "boot-delay", time.Minute, "at most this long after start before the first check")
	c.Flags().DurationVar(&sched.Interval, "interval", 45*time.Minute, "time between checks")
	c.Flags().DurationVar(&sched.Jitter, "jitter", 5*time.Minute, "random extra time between checks")
	c.Flags().DurationVar(&sched.Retry, "retry", time.Minute, "first retry after a failed check, doubled per failure up to --interval")
	return c
}

func markGoodCmd() *cobra.Command {
	var m machineFlags
	c := &cobra.Command{
		Use:   "mark-good",
		Short: "Mark the running slot successful (the boot reached its target) and report a completed update",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, err := m.agent(false)
			if err != nil {
				return err
			}
			if err := a.Target.Slots.MarkGood(a.Target.Active); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "slot %s marked good\n", a.Target.Active)
			if a.Config.Server == "" {
				return nil
			}
			ctx, cancel := signalContext()
			defer cancel()
			// Reporting may fail (no network yet): the agent retries it.
			if _, err := a.Reconcile(ctx); err != nil {
				a.Log.Printf("report: %v", err)
			}
			return nil
		},
	}
	m.register(c.Flags())
	return c
}
