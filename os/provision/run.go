package provision

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Done reports whether root was provisioned already, and with what.
func Done(root string) (string, bool) {
	b, err := os.ReadFile(filepath.Join(root, Marker))
	if err != nil {
		return "", false
	}
	return strings.TrimSpace(string(b)), true
}

// Provision applies raw to root once: with the marker present it does
// nothing; otherwise it plans (refusing the whole config on any problem),
// applies, and writes the marker last. It returns the steps it took.
func Provision(raw []byte, root string) ([]string, error) {
	if _, ok := Done(root); ok {
		return nil, nil
	}
	cfg, err := Parse(raw)
	if err != nil {
		return nil, err
	}
	p, err := MakePlan(cfg, root)
	if err != nil {
		return nil, fmt.Errorf("config refused, nothing applied:\n%w", err)
	}
	if err := p.Apply(); err != nil {
		return nil, fmt.Errorf("apply config: %w", err)
	}
	if err := MarkDone(root, Digest(raw)); err != nil {
		return nil, err
	}
	return p.Steps(), nil
}

// MarkDone writes the marker (also when there was no config at all, so
// later boots do not look again).
func MarkDone(root, what string) error {
	m := filepath.Join(root, Marker)
	if err := os.MkdirAll(filepath.Dir(m), 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("write provisioning marker: %w", err)
	}
	if err := writeFile(m, []byte(what+"\n"), 0o644, 0, 0); err != nil {
		return fmt.Errorf("write provisioning marker: %w", err)
	}
	return nil
}
