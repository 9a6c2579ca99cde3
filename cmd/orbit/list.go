package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	units "github.com/docker/go-units"
	"github.com/spf13/cobra"
)

func formatFlag(cmd *cobra.Command, p *string) {
	cmd.Flags().StringVar(p, "format", "", `output format: "" (a table) or json`)
}

func checkFormat(f string) error {
	if f != "" && f != "json" {
		return usageError{fmt.Errorf("--format: unknown format %q (json)", f)}
	}
	return nil
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return units.HumanDuration(time.Since(t)) + " ago"
}

func listCommand(g *globalFlags) *cobra.Command {
	var format string
	var full, noLegend bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List pods",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(format); err != nil {
				return err
			}
			pods, err := g.env.List()
			if err != nil {
				return err
			}
			if format == "json" {
				return printJSON(pods)
			}
			w := tabwriter.NewWriter(os.Stdout, 0, 8, 2, ' ', 0)
			if !noLegend {
				fmt.Fprintln(w, "UUID\tAPP\tIMAGE NAME\tSTATE\tCREATED\tEXIT")
			}
			for _, p := range pods {
				id := p.UUID
				if !full {
					id = id[:8]
				}
				if len(p.Apps) == 0 {
					fmt.Fprintf(w, "%s\t-\t-\t%s\t%s\t-\n", id, p.State, ago(p.Created))
				}
				for i, a := range p.Apps {
					exit := "-"
					if a.ExitCode != nil {
						exit = fmt.Sprint(*a.ExitCode)
					}
					if i == 0 {
						fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", id, a.Name, a.Image, p.State, ago(p.Created), exit)
					} else {
						fmt.Fprintf(w, "\t%s\t%s\t\t\t%s\n", a.Name, a.Image, exit)
					}
				}
			}
			return w.Flush()
		},
	}
	formatFlag(cmd, &format)
	cmd.Flags().BoolVar(&full, "full", false, "show full UUIDs")
	cmd.Flags().BoolVar(&noLegend, "no-legend", false, "leave out the header line")
	return cmd
}

// shortID shortens a digest for tables.
func shortID(d string) string {
	d = strings.TrimPrefix(d, "sha256:")
	if len(d) > 12 {
		return "sha256:" + d[:12]
	}
	return d
}
