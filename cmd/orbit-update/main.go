// Command orbit-update is Orbit OS's update agent and its tools
// (docs/updates.md):
//
//	orbit-update status                 slots, versions, the pending update
//	orbit-update check                  ask the Omaha server for an update
//	orbit-update apply [--payload F]    download (or read F) and apply now
//	orbit-update agent                  check at boot and on a schedule
//	orbit-update mark-good              the running slot reached its target
//	orbit-update payload keygen|build   make signing keys and signed payloads
//	orbit-update serve                  a small Omaha server for a directory
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/orbit-pods/orbit/os/update/payload"
)

func main() {
	root := &cobra.Command{
		Use:           "orbit-update",
		Short:         "Orbit OS update agent: signed /usr payloads over Omaha into the passive slot",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(statusCmd(), checkCmd(), applyCmd(), agentCmd(), markGoodCmd(), payloadCmd(), serveCmd())
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "orbit-update:", err)
		switch {
		case errors.Is(err, payload.ErrUnsigned):
			fmt.Fprintln(os.Stderr, "orbit-update: refused: the payload is not signed by a key in the update keys directory; nothing was switched")
		case errors.Is(err, payload.ErrCorrupt):
			fmt.Fprintln(os.Stderr, "orbit-update: refused: the payload is corrupt; nothing was switched")
		}
		os.Exit(1)
	}
}
