package payload

import (
	"archive/tar"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Input is a file to put in a payload.
type Input struct {
	Role string
	Path string
	Name string // defaults: usr.img, vmlinuz, initrd.img
}

func defaultName(role string) string {
	switch role {
	case RoleUsr:
		return "usr.img"
	case RoleKernel:
		return "vmlinuz"
	case RoleInitrd:
		return "initramfs.img"
	case RoleSlotCfg:
		return "slot.cfg"
	}
	return role
}

// Build writes a signed payload of the inputs to w. Each input is read
// twice: once to hash it for the manifest, once to copy it.
func Build(w io.Writer, version string, inputs []Input, key ed25519.PrivateKey) (*Manifest, error) {
	m := &Manifest{Format: Format, Version: version}
	for _, in := range inputs {
		name := in.Name
		if name == "" {
			name = defaultName(in.Role)
		}
		size, sum, err := hashFile(in.Path)
		if err != nil {
			return nil, err
		}
		m.Files = append(m.Files, File{Name: name, Role: in.Role, Size: size, SHA256: sum})
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	mb, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	sig := []byte(base64.StdEncoding.EncodeToString(ed25519.Sign(key, mb)) + "\n")
	tw := tar.NewWriter(w)
	for _, member := range []struct {
		name string
		b    []byte
	}{{ManifestName, mb}, {SignatureName, sig}} {
		if err := tw.WriteHeader(&tar.Header{Name: member.name, Mode: 0o644, Size: int64(len(member.b)), Format: tar.FormatPAX}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(member.b); err != nil {
			return nil, err
		}
	}
	for i, in := range inputs {
		f := m.Files[i]
		if err := copyMember(tw, f, in.Path); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("finish payload: %w", err)
	}
	return m, nil
}

func copyMember(tw *tar.Writer, f File, path string) error {
	r, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("payload %s: %w", f.Role, err)
	}
	defer r.Close()
	if err := tw.WriteHeader(&tar.Header{Name: f.Name, Mode: 0o644, Size: f.Size, Format: tar.FormatPAX}); err != nil {
		return err
	}
	// A file that changed since it was hashed fails here or at Close.
	if _, err := io.CopyN(tw, r, f.Size); err != nil {
		return fmt.Errorf("copy %s into payload: %w", path, err)
	}
	return nil
}

func hashFile(path string) (int64, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, "", fmt.Errorf("payload input: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return 0, "", fmt.Errorf("hash %s: %w", filepath.Base(path), err)
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}
