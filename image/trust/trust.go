// Package trust keeps the OpenPGP keys an administrator trusts to sign
// images, and checks detached signatures against them.
//
//	trust/root.d/<fingerprint>                   keys trusted for every image
//	trust/prefix.d/<escaped prefix>/<fingerprint> keys trusted for names under a prefix
//
// A key trusted for the prefix "example.com/app" signs "example.com/app" and
// "example.com/app/db", never "example.com/application": prefixes match
// whole path components. The escaped prefix is the prefix with "/" written
// as "," (appc names cannot hold a comma), as rkt did. Keys are written as
// armored public keys, to a temp file renamed into place, so a reader sees a
// key whole or not at all; only the public part of a key file is kept.
package trust

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/appc/spec/schema/types"
)

// Errors callers decide on. Every verification failure wraps one of them.
var (
	// ErrUnsigned: there is no signature to check.
	ErrUnsigned = errors.New("image is not signed")
	// ErrBadSignature: the signature does not match the image, or is not
	// a signature at all.
	ErrBadSignature = errors.New("bad signature")
	// ErrUntrusted: the signature is by a key not trusted for the name.
	ErrUntrusted = errors.New("signed by a key not trusted for this name")
	// ErrNoKeys: no key at all is trusted for the name.
	ErrNoKeys = errors.New("no keys are trusted for this name")
)

// Store is a directory of trusted keys.
type Store struct {
	dir string
}

// Open returns the key store under dir (<data dir>/trust). Nothing is
// created until a key is added.
func Open(dir string) *Store { return &Store{dir: dir} }

// Key is a trusted key as stored.
type Key struct {
	// Prefix is the name prefix it is trusted for; empty for a root key.
	Prefix      string `json:"prefix"`
	Fingerprint string `json:"fingerprint"`
	// Identities are the key's user IDs, for people to read.
	Identities []string `json:"identities"`
	Path       string   `json:"path"`
}

func (s *Store) rootDir() string { return filepath.Join(s.dir, "root.d") }

func (s *Store) prefixDir(prefix string) string {
	return filepath.Join(s.dir, "prefix.d", strings.ReplaceAll(prefix, "/", ","))
}

// CheckPrefix refuses a prefix that is not an appc name (so it cannot name
// a path outside prefix.d).
func CheckPrefix(prefix string) error {
	if _, err := types.NewACIdentifier(prefix); err != nil {
		return fmt.Errorf("prefix %q: %w", prefix, err)
	}
	for _, c := range strings.Split(prefix, "/") {
		if c == "." || c == ".." {
			return fmt.Errorf("prefix %q: %q is not a name component", prefix, c)
		}
	}
	return nil
}

// Add trusts the public keys in keyFile (armored or binary) for names under
// prefix, or for every name when prefix is empty. It returns what it stored.
func (s *Store) Add(prefix string, keyFile []byte) ([]Key, error) {
	dir := s.rootDir()
	if prefix != "" {
		if err := CheckPrefix(prefix); err != nil {
			return nil, err
		}
		dir = s.prefixDir(prefix)
	}
	ents, err := readKeys(keyFile)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create trust directory: %w", err)
	}
	var out []Key
	for _, e := range ents {
		var buf bytes.Buffer
		w, err := armor.Encode(&buf, openpgp.PublicKeyType, nil)
		if err != nil {
			return nil, err
		}
		if err := e.Serialize(w); err != nil {
			return nil, fmt.Errorf("serialize key %s: %w", fingerprint(e), err)
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
		buf.WriteByte('\n')
		p := filepath.Join(dir, fingerprint(e))
		if err := writeFileAtomic(p, buf.Bytes()); err != nil {
			return nil, fmt.Errorf("store key %s: %w", fingerprint(e), err)
		}
		out = append(out, keyOf(prefix, p, e))
	}
	return out, nil
}

// readKeys parses a key file, armored or binary.
func readKeys(b []byte) (openpgp.EntityList, error) {
	ents, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(b))
	if err != nil {
		var berr error
		ents, berr = openpgp.ReadKeyRing(bytes.NewReader(b))
		if berr != nil {
			return nil, fmt.Errorf("read OpenPGP key: %w", err)
		}
	}
	if len(ents) == 0 {
		return nil, errors.New("read OpenPGP key: the file holds no key")
	}
	return ents, nil
}

func fingerprint(e *openpgp.Entity) string {
	return fmt.Sprintf("%x", e.PrimaryKey.Fingerprint)
}

func keyOf(prefix, path string, e *openpgp.Entity) Key {
	k := Key{Prefix: prefix, Fingerprint: fingerprint(e), Path: path}
	for id := range e.Identities {
		k.Identities = append(k.Identities, id)
	}
	sort.Strings(k.Identities)
	return k
}

func writeFileAtomic(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".key-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// List returns every trusted key, root keys first, then by prefix.
func (s *Store) List() ([]Key, error) {
	var out []Key
	root, err := s.loadDir("", s.rootDir())
	if err != nil {
		return nil, err
	}
	out = append(out, root...)
	dirs, err := os.ReadDir(filepath.Join(s.dir, "prefix.d"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("list trusted keys: %w", err)
	}
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		prefix := strings.ReplaceAll(d.Name(), ",", "/")
		keys, err := s.loadDir(prefix, filepath.Join(s.dir, "prefix.d", d.Name()))
		if err != nil {
			return nil, err
		}
		out = append(out, keys...)
	}
	return out, nil
}

// Remove stops trusting the key with fingerprint fp, for every prefix it
// was trusted for, and returns the keys removed.
func (s *Store) Remove(fp string) ([]Key, error) {
	fp = strings.ToLower(strings.ReplaceAll(fp, " ", ""))
	keys, err := s.List()
	if err != nil {
		return nil, err
	}
	var out []Key
	for _, k := range keys {
		if k.Fingerprint != fp {
			continue
		}
		if err := os.Remove(k.Path); err != nil {
			return out, fmt.Errorf("remove key %s: %w", fp, err)
		}
		out = append(out, k)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("key %s is not trusted", fp)
	}
	return out, nil
}

// loadDir reads the keys of one directory; a missing directory has none.
func (s *Store) loadDir(prefix, dir string) ([]Key, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read trusted keys: %w", err)
	}
	var out []Key
	for _, de := range ents {
		if de.IsDir() || strings.HasPrefix(de.Name(), ".") {
			continue
		}
		p := filepath.Join(dir, de.Name())
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("read trusted key: %w", err)
		}
		ks, err := readKeys(b)
		if err != nil {
			return nil, fmt.Errorf("trusted key %s: %w", p, err)
		}
		for _, e := range ks {
			if fingerprint(e) != de.Name() {
				// A file whose name is not its key's fingerprint was not
				// written by Add; trusting it would trust what the
				// listing does not show.
				return nil, fmt.Errorf("trusted key %s holds key %s", p, fingerprint(e))
			}
			out = append(out, keyOf(prefix, p, e))
		}
	}
	return out, nil
}

// keyring gathers the keys trusted for name: root keys and the keys of
// every prefix of it, component by component.
func (s *Store) keyring(name string) (openpgp.EntityList, error) {
	var ring openpgp.EntityList
	add := func(dir string) error {
		ents, err := os.ReadDir(dir)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read trusted keys: %w", err)
		}
		for _, de := range ents {
			if de.IsDir() || strings.HasPrefix(de.Name(), ".") {
				continue
			}
			b, err := os.ReadFile(filepath.Join(dir, de.Name()))
			if err != nil {
				return fmt.Errorf("read trusted key: %w", err)
			}
			ks, err := readKeys(b)
			if err != nil {
				return fmt.Errorf("trusted key %s: %w", filepath.Join(dir, de.Name()), err)
			}
			ring = append(ring, ks...)
		}
		return nil
	}
	if err := add(s.rootDir()); err != nil {
		return nil, err
	}
	parts := strings.Split(name, "/")
	for i := len(parts); i > 0; i-- {
		p := strings.Join(parts[:i], "/")
		if CheckPrefix(p) != nil {
			continue
		}
		if err := add(s.prefixDir(p)); err != nil {
			return nil, err
		}
	}
	return ring, nil
}

// Verify checks that sig is a detached signature (armored or binary) of
// image by a key trusted for name, and returns the signer. image is read
// once per signature encoding tried, so it must be seekable.
func (s *Store) Verify(name string, image io.ReadSeeker, sig []byte) (*openpgp.Entity, error) {
	if len(sig) == 0 {
		return nil, ErrUnsigned
	}
	ring, err := s.keyring(name)
	if err != nil {
		return nil, err
	}
	if len(ring) == 0 {
		return nil, fmt.Errorf("%w (add one with orbit trust --prefix=%s KEYFILE)", ErrNoKeys, name)
	}
	check := openpgp.CheckDetachedSignature
	if bytes.HasPrefix(bytes.TrimSpace(sig), []byte("-----BEGIN")) {
		check = openpgp.CheckArmoredDetachedSignature
	}
	if _, err := image.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	signer, err := check(ring, image, bytes.NewReader(sig), nil)
	switch {
	case err == nil:
		return signer, nil
	case errors.Is(err, pgperrors.ErrUnknownIssuer):
		return nil, ErrUntrusted
	default:
		return nil, fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
}
