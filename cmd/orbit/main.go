// Command orbit is Orbit's stage0: the CLI that fetches images, prepares
// pods and execs stage1 to run them. See docs/commands.md.
package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	units "github.com/docker/go-units"
	"github.com/spf13/cobra"

	"github.com/orbit-pods/orbit/stage0"
)

// Version is set by the build.
var Version = "dev"

// exitError carries an exit status out of a command.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// usageError marks bad flags or arguments.
type usageError struct{ error }

// runtimeErrorStatus is what `orbit run` exits with when orbit itself fails
// (as opposed to the app), podman's convention so callers can tell them apart.
const runtimeErrorStatus = 125

type globalFlags struct {
	env             stage0.Env
	insecureOptions []string
	authFile        string
	maxLayerSize    string
}

// fetchOptions are the fetch settings the global flags make.
func (g *globalFlags) fetchOptions() stage0.FetchOptions {
	o := stage0.FetchOptions{AuthFile: g.authFile, Progress: progressBars(), Trust: g.env.Trust()}
	o.SetInsecure(g.insecureOptions)
	if g.maxLayerSize != "" {
		n, _ := units.RAMInBytes(g.maxLayerSize) // checked in PersistentPreRunE
		o.MaxLayerBytes = n
	}
	return o
}

func main() {
	g := &globalFlags{}
	root := &cobra.Command{
		Use:           "orbit",
		Short:         "Orbit runs pods without a daemon",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       Version,
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.env.DataDir, "dir", "/var/lib/orbit", "data directory (images and pods)")
	pf.StringVar(&g.env.LocalConfig, "local-config", "/etc/orbit", "local configuration directory")
	pf.StringVar(&g.env.SystemConfig, "system-config", "/usr/lib/orbit", "system configuration directory")
	pf.BoolVar(&g.env.Debug, "debug", false, "print what orbit and stage1 do to stderr")
	pf.StringSliceVar(&g.insecureOptions, "insecure-options", nil, "security checks to skip: none, image, http, tls, ondisk, seccomp, all")
	pf.StringVar(&g.maxLayerSize, "max-layer-size", "", "largest content a layer may unpack to (e.g. 10G; default 64G)")
	pf.StringVar(&g.authFile, "auth-file", "", "registry credentials, docker's config.json format (default $REGISTRY_AUTH_FILE or ~/.docker/config.json)")
	root.PersistentPreRunE = func(cmd *cobra.Command, args []string) error {
		for _, o := range g.insecureOptions {
			switch o {
			case "none", "image", "http", "tls", "ondisk", "seccomp", "all":
			default:
				return usageError{fmt.Errorf("--insecure-options: unknown option %q (none, image, http, tls, ondisk, seccomp, all)", o)}
			}
		}
		if g.maxLayerSize != "" {
			if n, err := units.RAMInBytes(g.maxLayerSize); err != nil || n <= 0 {
				return usageError{fmt.Errorf("--max-layer-size %q: want a size such as 512M or 10G", g.maxLayerSize)}
			}
		}
		// Commands that fetch on demand (run) get the options through
		// their context.
		cmd.SetContext(stage0.WithFetchOptions(cmd.Context(), g.fetchOptions()))
		return nil
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(
		runCommand(g),
		prepareCommand(g),
		runPreparedCommand(g),
		statusCommand(g),
		stopCommand(g),
		rmCommand(g),
		enterCommand(g),
		catManifestCommand(g),
		logsCommand(g),
		metadataServiceCommand(),
		apiServiceCommand(g),
		configCommand(g),
		fetchCommand(g),
		imageCommand(g),
		listCommand(g),
		gcCommand(g),
		trustCommand(g),
		appCommand(g),
		versionCommand(),
	)
	err := root.Execute()
	var ee exitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		os.Exit(ee.code)
	default:
		fmt.Fprintln(os.Stderr, "orbit:", strings.TrimSpace(err.Error()))
		var ue usageError
		if errors.As(err, &ue) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// insecure reports whether --insecure-options skips check.
func (g *globalFlags) insecure(check string) bool {
	for _, o := range g.insecureOptions {
		if o == check || o == "all" {
			return true
		}
	}
	return false
}

func versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			fmt.Printf("orbit Version: %s\nstage1 ABI: %d\ndefault stage1: %s\n", Version, stage0.Stage1ABIVersion, stage0.DefaultStage1Path)
			return nil
		},
	}
}
