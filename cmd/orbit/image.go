package main

import (
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	units "github.com/docker/go-units"
	"github.com/spf13/cobra"

	"github.com/orbit-pods/orbit/stage0"
)

func fetchCommand(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "fetch SOURCE...",
		Short: "Fetch images into the store (oci:DIR[:REF], oci-archive:FILE[:REF], docker-archive:FILE[:REF], FILE.aci, URL, appc name)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := g.env.Store()
			if err != nil {
				return err
			}
			for _, a := range args {
				img, err := stage0.Fetch(cmd.Context(), st, a, g.env.FetchOptions()...)
				if err != nil {
					return err
				}
				fmt.Println(img.ID)
			}
			return nil
		},
	}
}

func imageCommand(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Work with stored images",
	}
	var format string
	list := &cobra.Command{
		Use:   "list",
		Short: "List stored images",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(format); err != nil {
				return err
			}
			st, err := g.env.Store()
			if err != nil {
				return err
			}
			imgs, err := st.List()
			if err != nil {
				return err
			}
			if format == "json" {
				return printJSON(imgs)
			}
			w := tabwriter.NewWriter(os.Stdout, 0, 8, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tID\tSIZE\tIMPORTED\tLAST USED")
			for _, img := range imgs {
				name := strings.Join(img.Names, ",")
				if name == "" {
					name = "<none>"
				}
				last := "never"
				if !img.LastUsed.IsZero() {
					last = ago(img.LastUsed)
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", name, shortID(img.ID.String()), units.HumanSize(float64(img.Size)), ago(img.Imported), last)
			}
			return w.Flush()
		},
	}
	formatFlag(list, &format)
	cmd.AddCommand(list)
	return cmd
}
