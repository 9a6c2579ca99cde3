// Package units holds the systemd units Orbit ships (the files beside this
// one), for builders that install them without a checkout: the OS image.
// `make install` copies the same files.
package units

import (
	"embed"
	"fmt"
	"strings"
)

//go:embed *.service *.timer *.socket
var files embed.FS

// Unit returns the named unit with @BINDIR@ replaced by bindir, as
// `make install` writes it.
func Unit(name, bindir string) (string, error) {
	b, err := files.ReadFile(name)
	if err != nil {
		return "", fmt.Errorf("unit %s: %w", name, err)
	}
	return strings.ReplaceAll(string(b), "@BINDIR@", bindir), nil
}

// Names lists the shipped units.
func Names() []string {
	ents, _ := files.ReadDir(".")
	out := make([]string, 0, len(ents))
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}
