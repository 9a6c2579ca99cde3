// Package payload is the signed update payload: a full /usr filesystem
// image with the kernel and initramfs that boot it, in one file.
//
// A payload is a POSIX tar stream whose first two members are a manifest
// and its signature, followed by the files the manifest lists, in its order:
//
//	orbit-update.json      Manifest: format, version, and each file's role, size and SHA-256
//	orbit-update.json.sig  base64 Ed25519 signature of the manifest's exact bytes
//	usr.img                role "usr": the /usr filesystem, written to the passive slot
//	vmlinuz                role "kernel"
//	initramfs.img          role "initrd" (optional)
//	slot.cfg               role "slotcfg" (optional): the loader's per-slot settings,
//	                       e.g. the dm-verity root hash of this /usr
//
// The tar stream may be gzip-compressed as a whole; readers detect it.
// Putting the signed manifest first lets a reader verify it before it
// writes a byte anywhere, then check each file against the signed digest
// while it streams: Reader never hands out unverified bytes as good, and a
// file's last Read fails when its digest or size is wrong. The keys are
// Ed25519 in PEM (PKIX public, PKCS#8 private), so openssl reads them too.
package payload

import (
	"encoding/json"
	"fmt"
	"regexp"
)

// Names of the leading members.
const (
	ManifestName  = "orbit-update.json"
	SignatureName = "orbit-update.json.sig"
)

// Format is the manifest format this package writes and reads.
const Format = 1

// Roles of the files in a payload.
const (
	RoleUsr    = "usr"
	RoleKernel = "kernel"
	RoleInitrd = "initrd"
	// RoleSlotCfg is the boot loader's per-slot configuration, kept next
	// to the slot's kernel (the dm-verity root hash of its /usr).
	RoleSlotCfg = "slotcfg"
)

// Manifest describes a payload; it is what the signature covers.
type Manifest struct {
	Format  int    `json:"format"`
	Version string `json:"version"`
	Files   []File `json:"files"`
}

// File is one file of a payload.
type File struct {
	Name   string `json:"name"`
	Role   string `json:"role"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"` // lower-case hex
}

var (
	versionRE = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$`)
	nameRE    = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
	hexRE     = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// File returns the file with a role, if the manifest has one.
func (m *Manifest) File(role string) (File, bool) {
	for _, f := range m.Files {
		if f.Role == role {
			return f, true
		}
	}
	return File{}, false
}

// Validate checks a manifest's fields: a payload must carry a usr image
// and a kernel, each role at most once, with well-formed names and digests.
func (m *Manifest) Validate() error {
	if m.Format != Format {
		return fmt.Errorf("manifest format %d, want %d", m.Format, Format)
	}
	if !versionRE.MatchString(m.Version) {
		return fmt.Errorf("manifest version %q is not a version", m.Version)
	}
	seen := map[string]bool{}
	names := map[string]bool{ManifestName: true, SignatureName: true}
	for _, f := range m.Files {
		switch f.Role {
		case RoleUsr, RoleKernel, RoleInitrd, RoleSlotCfg:
		default:
			return fmt.Errorf("manifest file %q: unknown role %q", f.Name, f.Role)
		}
		if seen[f.Role] {
			return fmt.Errorf("manifest has two %s files", f.Role)
		}
		seen[f.Role] = true
		if !nameRE.MatchString(f.Name) || names[f.Name] {
			return fmt.Errorf("manifest file name %q is invalid or repeated", f.Name)
		}
		names[f.Name] = true
		if f.Size <= 0 || !hexRE.MatchString(f.SHA256) {
			return fmt.Errorf("manifest file %q: size %d or sha256 %q invalid", f.Name, f.Size, f.SHA256)
		}
	}
	if !seen[RoleUsr] || !seen[RoleKernel] {
		return fmt.Errorf("manifest lacks a %s image or a %s", RoleUsr, RoleKernel)
	}
	return nil
}

func parseManifest(b []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("parse manifest: %w", err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}
