package aci

import (
	"fmt"
	"path"
	"strings"

	"github.com/appc/spec/schema"
)

// ParseManifest parses and checks an appc image manifest: the appc schema's
// own validation, then the paths Orbit will act on, which must be absolute
// and free of "..", so none of them can point outside the app's root.
func ParseManifest(raw []byte) (*schema.ImageManifest, error) {
	var m schema.ImageManifest
	if err := m.UnmarshalJSON(raw); err != nil {
		return nil, fmt.Errorf("%w: manifest: %v", ErrInvalid, err)
	}
	if m.App == nil {
		return &m, nil
	}
	check := func(what, p string) error {
		if !path.IsAbs(p) {
			return fmt.Errorf("%w: manifest: %s %q is not an absolute path", ErrInvalid, what, p)
		}
		for _, c := range strings.Split(p, "/") {
			if c == ".." {
				return fmt.Errorf("%w: manifest: %s %q: \"..\" in path", ErrInvalid, what, p)
			}
		}
		return nil
	}
	if len(m.App.Exec) > 0 {
		if err := check("exec", m.App.Exec[0]); err != nil {
			return nil, err
		}
	}
	if m.App.WorkingDirectory != "" {
		if err := check("workingDirectory", m.App.WorkingDirectory); err != nil {
			return nil, err
		}
	}
	for _, mp := range m.App.MountPoints {
		if err := check("mount point", mp.Path); err != nil {
			return nil, err
		}
	}
	return &m, nil
}

// Version is the image's version label, "latest" when it has none: the tag
// the store keeps it under.
func Version(m *schema.ImageManifest) string {
	if v, ok := m.GetLabel("version"); ok && v != "" {
		return v
	}
	return "latest"
}

// StoreName is the name the store keeps an image under: its appc name and
// its version as the tag.
func StoreName(m *schema.ImageManifest) string {
	return m.Name.String() + ":" + Version(m)
}
