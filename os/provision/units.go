package provision

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"github.com/coreos/go-systemd/v22/unit"
	"github.com/coreos/ignition/v2/config/v3_5/types"
	securejoin "github.com/cyphar/filepath-securejoin"
)

// Units go to /etc/systemd/system, where the administrator's own live;
// units shipped in /usr are found in these directories for enabling.
const etcUnits = "/etc/systemd/system"

var unitDirs = []string{etcUnits, "/usr/lib/systemd/system", "/lib/systemd/system"}

// planUnit writes a unit and its drop-ins, masks it, or enables it the
// way `systemctl enable` does: a link in each target's .wants (or
// .requires) directory named in its [Install] section.
func (p *Plan) planUnit(u types.Unit) error {
	if strings.ContainsAny(u.Name, "/\n") || path.Ext(u.Name) == "" {
		return fmt.Errorf("bad unit name %q", u.Name)
	}
	unitPath := path.Join(etcUnits, u.Name)
	dst, err := p.resolve(unitPath)
	if err != nil {
		return err
	}
	body := ""
	if u.Contents != nil {
		body = *u.Contents
		if _, err := unit.DeserializeOptions(strings.NewReader(body)); err != nil {
			return fmt.Errorf("contents: %w", err)
		}
		p.steps = append(p.steps, step{"unit " + u.Name, func() error { return writeFile(dst, []byte(body), 0o644, 0, 0) }})
	}
	for _, d := range u.Dropins {
		if strings.ContainsAny(d.Name, "/\n") || !strings.HasSuffix(d.Name, ".conf") {
			return fmt.Errorf("drop-in %q: want a NAME.conf", d.Name)
		}
		if d.Contents == nil {
			continue
		}
		c := *d.Contents
		if _, err := unit.DeserializeOptions(strings.NewReader(c)); err != nil {
			return fmt.Errorf("drop-in %s: %w", d.Name, err)
		}
		ddst, err := p.resolve(path.Join(etcUnits, u.Name+".d", d.Name))
		if err != nil {
			return err
		}
		p.steps = append(p.steps, step{"drop-in " + u.Name + ".d/" + d.Name, func() error { return writeFile(ddst, []byte(c), 0o644, 0, 0) }})
	}
	if u.Mask != nil && *u.Mask {
		if u.Enabled != nil && *u.Enabled {
			return errors.New("both masked and enabled")
		}
		p.steps = append(p.steps, step{"mask " + u.Name, func() error {
			_ = os.Remove(dst)
			return os.Symlink("/dev/null", dst)
		}})
		return nil
	}
	if u.Enabled == nil {
		return nil
	}
	if u.Contents == nil {
		b, found, err := p.findUnit(u.Name)
		if err != nil {
			return err
		}
		if found == "" {
			return fmt.Errorf("cannot be enabled: no contents in the config and no such unit in %v", unitDirs)
		}
		body = b
		unitPath = found
	}
	wants, err := installLinks(body)
	if err != nil {
		return err
	}
	if *u.Enabled && len(wants) == 0 {
		return errors.New("cannot be enabled: its [Install] section names no WantedBy= or RequiredBy=")
	}
	for _, dir := range wants {
		link, err := p.resolve(path.Join(etcUnits, dir, u.Name))
		if err != nil {
			return err
		}
		if *u.Enabled {
			target := unitPath
			p.steps = append(p.steps, step{"enable " + u.Name + " in " + dir, func() error {
				if err := os.MkdirAll(path.Dir(link), 0o755); err != nil {
					return err
				}
				_ = os.Remove(link)
				return os.Symlink(target, link)
			}})
		} else {
			p.steps = append(p.steps, step{"disable " + u.Name + " in " + dir, func() error {
				if err := os.Remove(link); err != nil && !os.IsNotExist(err) {
					return err
				}
				return nil
			}})
		}
	}
	return nil
}

// findUnit reads a unit already in the root, and returns its path there.
func (p *Plan) findUnit(name string) (string, string, error) {
	for _, d := range unitDirs {
		f, err := securejoin.SecureJoin(p.root, path.Join(d, name))
		if err != nil {
			return "", "", err
		}
		b, err := os.ReadFile(f)
		if err == nil {
			return string(b), path.Join(d, name), nil
		}
	}
	return "", "", nil
}

// installLinks are the .wants/.requires directories a unit's [Install]
// section asks for.
func installLinks(body string) ([]string, error) {
	opts, err := unit.DeserializeOptions(bytes.NewReader([]byte(body)))
	if err != nil {
		return nil, fmt.Errorf("contents: %w", err)
	}
	var out []string
	for _, o := range opts {
		if o.Section != "Install" {
			continue
		}
		suffix := map[string]string{"WantedBy": ".wants", "RequiredBy": ".requires"}[o.Name]
		if suffix == "" {
			continue
		}
		for _, t := range strings.Fields(o.Value) {
			out = append(out, t+suffix)
		}
	}
	return out, nil
}
