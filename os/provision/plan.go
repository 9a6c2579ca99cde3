package provision

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/coreos/ignition/v2/config/v3_5/types"
	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/vincent-petithory/dataurl"
)

// A Plan is a checked config, ready to apply to one root.
type Plan struct {
	root  string
	steps []step
	users *passwdDB
	// laterSteps of the users (homes, keys) run once the tables are written.
	laterSteps []step
}

type step struct {
	what string
	do   func() error
}

// Steps describes what Apply will do, in order.
func (p *Plan) Steps() []string {
	out := make([]string, len(p.steps))
	for i, s := range p.steps {
		out[i] = s.what
	}
	return out
}

// MakePlan checks cfg against the tree at root and returns what applying
// it takes. Every problem is reported, not just the first; with any, the
// plan is nil and nothing is to be written.
func MakePlan(cfg types.Config, root string) (*Plan, error) {
	var errs []error
	for _, u := range unsupported(cfg) {
		errs = append(errs, fmt.Errorf("%s: %w", u, ErrUnsupported))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	db, err := readPasswd(root)
	if err != nil {
		return nil, err
	}
	p := &Plan{root: root, users: db}
	for _, u := range cfg.Passwd.Users {
		if err := p.planUser(u); err != nil {
			errs = append(errs, fmt.Errorf("passwd.users %s: %w", u.Name, err))
		}
	}
	if db.changed {
		p.steps = append(p.steps, step{"write /etc/passwd, /etc/group, /etc/shadow", db.write})
	}
	p.steps = append(p.steps, p.laterSteps...)
	for _, d := range cfg.Storage.Directories {
		if err := p.planDirectory(d); err != nil {
			errs = append(errs, fmt.Errorf("storage.directories %s: %w", d.Path, err))
		}
	}
	for _, f := range cfg.Storage.Files {
		if err := p.planFile(f); err != nil {
			errs = append(errs, fmt.Errorf("storage.files %s: %w", f.Path, err))
		}
	}
	for _, l := range cfg.Storage.Links {
		if err := p.planLink(l); err != nil {
			errs = append(errs, fmt.Errorf("storage.links %s: %w", l.Path, err))
		}
	}
	for _, u := range cfg.Systemd.Units {
		if err := p.planUnit(u); err != nil {
			errs = append(errs, fmt.Errorf("systemd.units %s: %w", u.Name, err))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return p, nil
}

// Apply carries the plan out, step by step.
func (p *Plan) Apply() error {
	for _, s := range p.steps {
		if err := s.do(); err != nil {
			return fmt.Errorf("%s: %w", s.what, err)
		}
	}
	return nil
}

// resolve maps an absolute path of the config into the root, never
// leaving it (symlinks in the tree resolve inside the root).
func (p *Plan) resolve(name string) (string, error) {
	if !path.IsAbs(name) || path.Clean(name) != name {
		return "", fmt.Errorf("path %q must be absolute and clean", name)
	}
	if name == "/usr" || strings.HasPrefix(name, "/usr/") {
		return "", fmt.Errorf("%s is on the read-only /usr; write to /etc or /var", name)
	}
	return securejoin.SecureJoin(p.root, name)
}

// existing says whether a node is at the resolved path, planned steps
// aside.
func existing(resolved string) (fs.FileInfo, bool) {
	fi, err := os.Lstat(resolved)
	return fi, err == nil
}

func overwrite(n types.Node) bool { return n.Overwrite != nil && *n.Overwrite }

// owner resolves a node's user and group (root if unset).
func (p *Plan) owner(n types.Node) (uid, gid int, err error) {
	switch {
	case n.User.ID != nil:
		uid = *n.User.ID
	case n.User.Name != nil:
		u, ok := p.users.lookupUser(*n.User.Name)
		if !ok {
			return 0, 0, fmt.Errorf("user %q does not exist", *n.User.Name)
		}
		uid = u.uid
	}
	switch {
	case n.Group.ID != nil:
		gid = *n.Group.ID
	case n.Group.Name != nil:
		g, ok := p.users.lookupGroup(*n.Group.Name)
		if !ok {
			return 0, 0, fmt.Errorf("group %q does not exist", *n.Group.Name)
		}
		gid = g.gid
	}
	return uid, gid, nil
}

func (p *Plan) planDirectory(d types.Directory) error {
	dst, err := p.resolve(d.Path)
	if err != nil {
		return err
	}
	uid, gid, err := p.owner(d.Node)
	if err != nil {
		return err
	}
	mode := fs.FileMode(0o755)
	if d.Mode != nil {
		mode = fs.FileMode(*d.Mode)
	}
	if fi, ok := existing(dst); ok && !fi.IsDir() && !overwrite(d.Node) {
		return fmt.Errorf("a %s is there and overwrite is not set", fi.Mode().Type())
	}
	p.steps = append(p.steps, step{"directory " + d.Path, func() error {
		if fi, ok := existing(dst); ok && !fi.IsDir() {
			if err := os.RemoveAll(dst); err != nil {
				return err
			}
		}
		if err := os.MkdirAll(dst, mode); err != nil {
			return err
		}
		return setAttrs(dst, mode, uid, gid)
	}})
	return nil
}

func (p *Plan) planFile(f types.File) error {
	dst, err := p.resolve(f.Path)
	if err != nil {
		return err
	}
	uid, gid, err := p.owner(f.Node)
	if err != nil {
		return err
	}
	mode := fs.FileMode(0o644)
	if f.Mode != nil {
		mode = fs.FileMode(*f.Mode)
	}
	data, err := contents(f.Contents)
	if err != nil {
		return err
	}
	if fi, ok := existing(dst); ok {
		if !overwrite(f.Node) {
			return fmt.Errorf("a %s is there and overwrite is not set", kind(fi))
		}
		if fi.IsDir() {
			return errors.New("a directory is there; overwrite replaces files and links only")
		}
	}
	p.steps = append(p.steps, step{"file " + f.Path, func() error { return writeFile(dst, data, mode, uid, gid) }})
	return nil
}

func (p *Plan) planLink(l types.Link) error {
	dst, err := p.resolve(l.Path)
	if err != nil {
		return err
	}
	if l.Target == nil || *l.Target == "" {
		return errors.New("no target")
	}
	target := *l.Target
	uid, gid, err := p.owner(l.Node)
	if err != nil {
		return err
	}
	hard := l.Hard != nil && *l.Hard
	var hardSrc string
	if hard {
		if hardSrc, err = p.resolve(target); err != nil {
			return fmt.Errorf("hard link target: %w", err)
		}
	}
	if fi, ok := existing(dst); ok {
		if !overwrite(l.Node) {
			return fmt.Errorf("a %s is there and overwrite is not set", kind(fi))
		}
		if fi.IsDir() {
			return errors.New("a directory is there; overwrite replaces files and links only")
		}
	}
	p.steps = append(p.steps, step{"link " + l.Path + " -> " + target, func() error {
		if err := os.MkdirAll(path.Dir(dst), 0o755); err != nil {
			return err
		}
		_ = os.Remove(dst)
		if hard {
			return os.Link(hardSrc, dst)
		}
		if err := os.Symlink(target, dst); err != nil {
			return err
		}
		return os.Lchown(dst, uid, gid)
	}})
	return nil
}

func kind(fi fs.FileInfo) string {
	switch {
	case fi.IsDir():
		return "directory"
	case fi.Mode()&fs.ModeSymlink != 0:
		return "symlink"
	default:
		return "file"
	}
}

// contents decodes a data: URL source, uncompresses it, and checks its
// verification hash (which Ignition computes over the source as fetched).
func contents(r types.Resource) ([]byte, error) {
	if r.Source == nil || *r.Source == "" {
		return nil, nil
	}
	u, err := dataurl.DecodeString(*r.Source)
	if err != nil {
		return nil, fmt.Errorf("contents.source: %w", err)
	}
	raw := u.Data
	if r.Verification.Hash != nil {
		algo, want, _ := strings.Cut(*r.Verification.Hash, "-")
		var h hash.Hash
		switch algo {
		case "sha512":
			h = sha512.New()
		case "sha256":
			h = sha256.New()
		default:
			return nil, fmt.Errorf("verification hash %q: only sha256 and sha512: %w", algo, ErrUnsupported)
		}
		h.Write(raw)
		if got := hex.EncodeToString(h.Sum(nil)); got != want {
			return nil, fmt.Errorf("contents' %s is %s, the config says %s", algo, got, want)
		}
	}
	if r.Compression != nil && *r.Compression != "" {
		if *r.Compression != "gzip" {
			return nil, fmt.Errorf("compression %q: %w", *r.Compression, ErrUnsupported)
		}
		z, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("contents: gzip: %w", err)
		}
		if raw, err = io.ReadAll(io.LimitReader(z, 1<<30)); err != nil {
			return nil, fmt.Errorf("contents: gzip: %w", err)
		}
	}
	return raw, nil
}

// writeFile writes through a temporary file renamed into place, so the
// path holds either the old node or the whole new file.
func writeFile(dst string, data []byte, mode fs.FileMode, uid, gid int) error {
	if err := os.MkdirAll(path.Dir(dst), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(path.Dir(dst), ".provision-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := setAttrs(tmp.Name(), mode, uid, gid); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}

func setAttrs(p string, mode fs.FileMode, uid, gid int) error {
	if err := os.Chown(p, uid, gid); err != nil {
		return err
	}
	// Chmod after chown: chown clears setuid bits.
	return os.Chmod(p, mode&fs.ModePerm|modeBits(mode))
}

// modeBits carries the setuid, setgid and sticky bits of an Ignition mode
// (a plain Unix mode number) into Go's FileMode.
func modeBits(m fs.FileMode) fs.FileMode {
	var out fs.FileMode
	if m&0o4000 != 0 {
		out |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		out |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		out |= fs.ModeSticky
	}
	return out
}
