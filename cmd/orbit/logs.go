package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/orbit-pods/orbit/pod"
	"github.com/orbit-pods/orbit/pod/applog"
	"github.com/orbit-pods/orbit/stage0"
)

func logsCommand(g *globalFlags) *cobra.Command {
	var opts stage0.LogOptions
	var since string
	var timestamps bool
	cmd := &cobra.Command{
		Use:   "logs [--follow] [--app=NAME] [--since=WHEN] [--tail=N] UUID",
		Short: "Print what a pod's apps wrote to stdout and stderr",
		Long: `Print what a pod's apps wrote, from the log files stage1 keeps in the pod
directory: stdout lines to stdout, stderr lines to stderr. Works for running
and exited pods until gc removes them. With several apps and no --app, each
line starts with its app's name.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if since != "" {
				t, err := parseSince(since, time.Now())
				if err != nil {
					return usageError{err}
				}
				opts.Since = t
			}
			if opts.Tail < 0 {
				return usageError{fmt.Errorf("--tail %d: want a count of lines, 0 for all", opts.Tail)}
			}
			opts.Malformed = func(file string, line int, err error) {
				fmt.Fprintf(os.Stderr, "orbit: skipping %s:%d: %v\n", file, line, err)
			}
			prefix := false
			if opts.App == "" {
				pd, err := g.env.FindPod(args[0])
				if err != nil {
					return err
				}
				m, err := pod.ReadManifest(pd.Dir().ManifestFile())
				if err != nil {
					return err
				}
				prefix = len(m.Apps) > 1
			}
			return g.env.Logs(cmd.Context(), args[0], opts, func(l stage0.LogLine) error {
				out := os.Stdout
				if l.Stream == applog.Stderr {
					out = os.Stderr
				}
				var b strings.Builder
				if timestamps {
					b.WriteString(l.Time.Format(time.RFC3339Nano) + " ")
				}
				if prefix {
					b.WriteString(l.App + ": ")
				}
				b.WriteString(l.Message)
				if !l.Partial {
					b.WriteByte('\n')
				}
				_, err := out.WriteString(b.String())
				return err
			})
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&opts.Follow, "follow", "f", false, "keep printing lines as the apps write them, until the pod exits")
	f.StringVar(&opts.App, "app", "", "only this app's output")
	f.StringVar(&since, "since", "", "only lines since a time (RFC 3339) or a duration ago (10m)")
	f.IntVar(&opts.Tail, "tail", 0, "start at the last N lines of each app (0: all)")
	f.BoolVarP(&timestamps, "timestamps", "t", false, "start each line with the time it was written")
	return cmd
}

// parseSince reads --since: an RFC 3339 time, or a duration before now.
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("--since %q: a duration ago is positive", s)
		}
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("--since %q: want an RFC 3339 time (2026-01-02T15:04:05Z) or a duration (10m)", s)
}
