// Package provision applies an Ignition config to a machine on its first
// boot, as Container Linux's Ignition did: files, directories, links,
// systemd units and drop-ins, users and their SSH keys.
//
// It runs once, before the machine's own units start. A config is read
// (Source: QEMU's fw_cfg, the OEM partition, a URL), parsed with
// Ignition's own config package (spec 3.0 to 3.5), and turned into a Plan.
// Making the plan checks everything — what Orbit does not support, paths,
// contents and their hashes, owners, what already exists — before a single
// byte is written, so a config is applied whole or not at all. Apply then
// carries the plan out on the target root and writes a marker; with the
// marker present, later boots apply nothing.
package provision

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/coreos/ignition/v2/config/v3_5"
	"github.com/coreos/ignition/v2/config/v3_5/types"
)

// ErrUnsupported marks a config that asks for something Orbit's
// provisioning does not do; the boot stops rather than half-apply it.
var ErrUnsupported = errors.New("not supported by orbit-provision")

// Marker is where, under the target root, a finished provisioning is
// recorded (with the config's SHA-256), so it happens once.
const Marker = "/var/lib/orbit/provisioned"

// Parse reads an Ignition config of spec 3.0 to 3.5 and reports every
// problem Ignition's validation finds.
func Parse(raw []byte) (types.Config, error) {
	cfg, rpt, err := v3_5.ParseCompatibleVersion(raw)
	if err != nil {
		if s := strings.TrimSpace(rpt.String()); s != "" {
			return types.Config{}, fmt.Errorf("parse Ignition config: %w:\n%s", err, s)
		}
		return types.Config{}, fmt.Errorf("parse Ignition config: %w", err)
	}
	return cfg, nil
}

// Digest names a config in the marker and the logs.
func Digest(raw []byte) string {
	d := sha256.Sum256(raw)
	return "sha256:" + hex.EncodeToString(d[:])
}

// unsupported lists the parts of cfg Orbit refuses, each named by its
// place in the config.
func unsupported(cfg types.Config) []string {
	var out []string
	add := func(cond bool, what string) {
		if cond {
			out = append(out, what)
		}
	}
	add(len(cfg.Ignition.Config.Merge) > 0 || cfg.Ignition.Config.Replace.Source != nil, "ignition.config.merge/replace (fetching further configs)")
	add(len(cfg.Ignition.Security.TLS.CertificateAuthorities) > 0, "ignition.security.tls")
	add(cfg.Ignition.Proxy.HTTPProxy != nil || cfg.Ignition.Proxy.HTTPSProxy != nil, "ignition.proxy")
	add(len(cfg.KernelArguments.ShouldExist) > 0 || len(cfg.KernelArguments.ShouldNotExist) > 0, "kernelArguments")
	add(len(cfg.Storage.Disks) > 0, "storage.disks (partitioning)")
	add(len(cfg.Storage.Raid) > 0, "storage.raid")
	add(len(cfg.Storage.Filesystems) > 0, "storage.filesystems")
	add(len(cfg.Storage.Luks) > 0, "storage.luks")
	add(len(cfg.Passwd.Groups) > 0, "passwd.groups")
	for i, u := range cfg.Passwd.Users {
		at := fmt.Sprintf("passwd.users[%d] (%s)", i, u.Name)
		add(u.ShouldExist != nil && !*u.ShouldExist, at+".shouldExist=false (deleting users)")
		add(u.System != nil && *u.System, at+".system")
		add(u.PrimaryGroup != nil, at+".primaryGroup")
		add(u.NoUserGroup != nil && *u.NoUserGroup, at+".noUserGroup")
	}
	for i, f := range cfg.Storage.Files {
		at := fmt.Sprintf("storage.files[%d] (%s)", i, f.Path)
		add(len(f.Append) > 0, at+".append")
		add(len(f.Contents.HTTPHeaders) > 0, at+".contents.httpHeaders")
		if s := f.Contents.Source; s != nil && *s != "" && !strings.HasPrefix(*s, "data:") {
			out = append(out, at+".contents.source "+scheme(*s)+" (only data: URLs are)")
		}
	}
	return out
}

func scheme(u string) string {
	if s, _, ok := strings.Cut(u, ":"); ok {
		return s + ":"
	}
	return u
}
