package update

import (
	"fmt"
	"os"
	"strings"

	"github.com/orbit-pods/orbit/os/slot"
)

// ActiveSlotFromCmdline finds the running slot on a kernel command line:
// orbit.slot=A|B as the loader passes it, or the /usr device given as
// PARTLABEL=USR-A|B (usr= or mount.usr=).
func ActiveSlotFromCmdline(cmdline string) (string, error) {
	for _, f := range strings.Fields(cmdline) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			continue
		}
		switch k {
		case "orbit.slot":
			if slot.Valid(v) {
				return v, nil
			}
			return "", fmt.Errorf("kernel command line: orbit.slot=%q is not A or B", v)
		case "usr", "mount.usr":
			if n, ok := strings.CutPrefix(v, "PARTLABEL="+slot.Label("")); ok && slot.Valid(n) {
				return n, nil
			}
		}
	}
	return "", fmt.Errorf("kernel command line names no slot (orbit.slot= or mount.usr=PARTLABEL=USR-A|B)")
}

// ReadMachineID reads a machine-id file.
func ReadMachineID(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read machine id: %w", err)
	}
	id := strings.TrimSpace(string(b))
	if id == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return id, nil
}
