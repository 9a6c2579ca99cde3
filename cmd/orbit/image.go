package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	units "github.com/docker/go-units"
	"github.com/spf13/cobra"

	"github.com/orbit-pods/orbit/image/archive"
	"github.com/orbit-pods/orbit/image/store"
	"github.com/orbit-pods/orbit/stage0"
)

func fetchCommand(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "fetch SOURCE...",
		Short: "Fetch images into the store (docker://HOST/NAME[:TAG|@DIGEST], oci:DIR[:REF], oci-archive:FILE[:REF], docker-archive:FILE[:REF], FILE.aci, URL, appc name)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := g.env.Store()
			if err != nil {
				return err
			}
			for _, a := range args {
				img, err := stage0.Fetch(cmd.Context(), st, a)
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
	cmd.AddCommand(list, imageRmCommand(g), imageExportCommand(g), imageRenderCommand(g, false),
		imageRenderCommand(g, true), imageCatManifestCommand(g), imageGCCommand(g))
	return cmd
}

func imageRmCommand(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "rm IMAGE...",
		Short: "Remove images, and the blobs and layers only they use",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.env.RemoveImages(cmd.Context(), args)
		},
	}
}

// storedImage opens the store and finds ref in it.
func (g *globalFlags) storedImage(ref string) (*store.Store, *store.Image, error) {
	st, err := g.env.Store()
	if err != nil {
		return nil, nil, err
	}
	img, err := st.Resolve(ref)
	if err != nil {
		return nil, nil, fmt.Errorf("image %s: %w", ref, err)
	}
	return st, img, nil
}

func imageExportCommand(g *globalFlags) *cobra.Command {
	var format string
	c := &cobra.Command{
		Use:   "export [--format=oci|aci] IMAGE FILE",
		Short: "Write an image as an OCI archive, or as an ACI (the default for FILE.aci)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if format == "" {
				format = "oci"
				if strings.HasSuffix(args[1], ".aci") {
					format = "aci"
				}
			}
			if format != "oci" && format != "aci" {
				return usageError{fmt.Errorf("--format: unknown format %q (oci, aci)", format)}
			}
			st, img, err := g.storedImage(args[0])
			if err != nil {
				return err
			}
			if format == "aci" {
				if err := writeFileAtomic(args[1], func(w io.Writer) error {
					return stage0.ExportACI(cmd.Context(), st, img, w)
				}); err != nil {
					return fmt.Errorf("export %s: %w", args[0], err)
				}
				return nil
			}
			v, err := st.V1Image(img)
			if err != nil {
				return err
			}
			name := args[0]
			if len(img.Names) > 0 {
				name = img.Names[0]
			}
			if err := writeFileAtomic(args[1], func(w io.Writer) error {
				return archive.WriteOCIArchive(w, v, name)
			}); err != nil {
				return fmt.Errorf("export %s: %w", args[0], err)
			}
			return nil
		},
	}
	c.Flags().StringVar(&format, "format", "", "oci (an OCI archive) or aci; by default aci for a FILE ending in .aci")
	return c
}

// writeFileAtomic writes file through a temp file beside it, so a failed
// export leaves no partial archive.
func writeFileAtomic(file string, write func(io.Writer) error) error {
	f, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), file)
}

func imageRenderCommand(g *globalFlags, extract bool) *cobra.Command {
	c := &cobra.Command{
		Use:   "render IMAGE DIR",
		Short: "Copy an image's root filesystem, layers flattened, into DIR",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, img, err := g.storedImage(args[0])
			if err != nil {
				return err
			}
			if extract {
				return st.Extract(cmd.Context(), img, args[1])
			}
			return st.Render(cmd.Context(), img, args[1])
		},
	}
	if extract {
		c.Use = "extract IMAGE DIR"
		c.Short = "Write an image's root filesystem to DIR/rootfs, its config and manifest beside it"
	}
	return c
}

func imageCatManifestCommand(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "cat-manifest IMAGE",
		Short: "Print an image's manifest as stored",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, img, err := g.storedImage(args[0])
			if err != nil {
				return err
			}
			b, err := st.ReadBlob(img.ID)
			if err != nil {
				return err
			}
			_, err = os.Stdout.Write(b)
			return err
		},
	}
}

func imageGCCommand(g *globalFlags) *cobra.Command {
	var o store.GCOptions
	c := &cobra.Command{
		Use:   "gc",
		Short: "Remove blobs and layers no image uses, and what interrupted fetches left",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := g.env.Store()
			if err != nil {
				return err
			}
			o.Log = os.Stdout
			return st.GC(cmd.Context(), o)
		},
	}
	c.Flags().DurationVar(&o.GracePeriod, "grace-period", 10*time.Minute, "how old unfinished work in images/tmp must be, unlocked, to be removed")
	return c
}
