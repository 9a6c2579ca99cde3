package main

import (
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/orbit-pods/orbit/image/trust"
)

func trustCommand(g *globalFlags) *cobra.Command {
	var (
		prefix, remove string
		root, list     bool
		format         string
	)
	cmd := &cobra.Command{
		Use:   "trust (--prefix=NAME | --root) KEYFILE... | --list | --remove FINGERPRINT",
		Short: "Trust OpenPGP keys to sign images under a name prefix, or every image",
		RunE: func(cmd *cobra.Command, args []string) error {
			ts := g.env.Trust()
			switch {
			case list:
				if len(args) > 0 || prefix != "" || root || remove != "" {
					return usageError{fmt.Errorf("--list takes no other flags or arguments")}
				}
				if err := checkFormat(format); err != nil {
					return err
				}
				keys, err := ts.List()
				if err != nil {
					return err
				}
				if format == "json" {
					if keys == nil {
						keys = []trust.Key{}
					}
					return printJSON(keys)
				}
				w := tabwriter.NewWriter(os.Stdout, 0, 8, 2, ' ', 0)
				fmt.Fprintln(w, "PREFIX\tFINGERPRINT\tIDENTITIES")
				for _, k := range keys {
					p := k.Prefix
					if p == "" {
						p = "<root>"
					}
					fmt.Fprintf(w, "%s\t%s\t%s\n", p, k.Fingerprint, strings.Join(k.Identities, ", "))
				}
				return w.Flush()
			case remove != "":
				if len(args) > 0 || prefix != "" || root {
					return usageError{fmt.Errorf("--remove takes no other flags or arguments")}
				}
				keys, err := ts.Remove(remove)
				for _, k := range keys {
					fmt.Printf("removed key %s from %s\n", k.Fingerprint, k.Path)
				}
				return err
			}
			if root == (prefix != "") {
				return usageError{fmt.Errorf("give exactly one of --prefix=NAME and --root")}
			}
			if len(args) == 0 {
				return usageError{fmt.Errorf("no key file given")}
			}
			for _, a := range args {
				b, err := os.ReadFile(a)
				if err != nil {
					return fmt.Errorf("read key: %w", err)
				}
				keys, err := ts.Add(prefix, b)
				if err != nil {
					return fmt.Errorf("trust %s: %w", a, err)
				}
				for _, k := range keys {
					what := "every image (root key)"
					if prefix != "" {
						what = "images under " + prefix
					}
					fmt.Printf("trusting key %s (%s) for %s: %s\n", k.Fingerprint, strings.Join(k.Identities, ", "), what, k.Path)
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&prefix, "prefix", "", "trust the keys for images whose name is NAME or under NAME/")
	f.BoolVar(&root, "root", false, "trust the keys for every image")
	f.BoolVar(&list, "list", false, "list trusted keys")
	f.StringVar(&remove, "remove", "", "stop trusting the key with this fingerprint")
	formatFlag(cmd, &format)
	return cmd
}
