// Package update is Orbit's OS update agent: it asks an Omaha server for
// the next version of the OS, streams the signed payload into the passive
// /usr slot and its kernel onto the ESP, verifies both, and only then sets
// the passive slot to boot next with a few tries. After the reboot it
// reports the new version once the slot is marked good, or the rollback
// when the loader fell back to the old slot.
//
// The lifecycle of an update, and the files that record it:
//
//	check      Omaha update check (GROUP as the track, machine-id, version)
//	download   payload streamed: signed manifest first, each file checked
//	           against it while written, the whole against Omaha's SHA-256
//	verify     the written slot and kernel files read back and hashed again
//	switch     slot metadata: passive slot next, with Tries boots to succeed
//	reboot     /run/reboot-required and the status file tell the reboot
//	           manager; the pending update is kept in StateDir/state.json
//	report     next boot: the new slot marked good → "update complete";
//	           the old slot running instead → "rollback" (a failed completion)
//
// Nothing before "switch" changes the slot metadata, so a payload that
// fails any check, or a process killed mid-write, leaves the machine
// booting the slot it booted before.
package update

import (
	"bufio"
	"fmt"
	"os"
	"strings"
)

// Default paths on an Orbit host.
const (
	// UsrConfFile is the OS's defaults, shipped in /usr.
	UsrConfFile = "/usr/share/orbit/update.conf"
	// EtcConfFile is the admin's: each key set here wins over /usr's.
	EtcConfFile = "/etc/orbit/update.conf"
	// KeysDir holds the public keys payloads must be signed with. Only
	// /usr's: a key dropped in /etc cannot make a payload trusted.
	KeysDir = "/usr/share/orbit/update-keys"
	// StateDir keeps the pending update across the reboot.
	StateDir = "/var/lib/orbit-update"
	// StatusFile is read by the reboot manager (docs/updates.md).
	StatusFile = "/run/orbit-update/status"
	// RebootRequired exists once an update waits for a reboot.
	RebootRequired = "/run/reboot-required"
)

// DefaultAppID is Orbit OS's Omaha application id.
const DefaultAppID = "{8d7b3b7e-52a4-4c1d-9e0b-6f3b0a1c2e55}"

// Reboot strategies, as Container Linux named them; the reboot manager
// acts on them, the agent only passes REBOOT_STRATEGY through the status.
var rebootStrategies = map[string]bool{"reboot": true, "etcd-lock": true, "best-effort": true, "off": true}

// Config is update.conf: shell-style KEY=VALUE lines.
type Config struct {
	Group          string // GROUP: the channel (Omaha track), default "stable"
	Server         string // SERVER: the Omaha endpoint URL
	RebootStrategy string // REBOOT_STRATEGY: reboot, etcd-lock, best-effort, off
	AppID          string // APPID: Omaha application id, default DefaultAppID
}

// LoadConfig reads the update.conf files in order, a later file's keys
// overriding an earlier's; a missing file is skipped.
func LoadConfig(files ...string) (Config, error) {
	c := Config{Group: "stable", RebootStrategy: "best-effort", AppID: DefaultAppID}
	for _, p := range files {
		kv, err := readKV(p)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return c, fmt.Errorf("read %s: %w", p, err)
		}
		for k, v := range kv {
			switch k {
			case "GROUP":
				c.Group = v
			case "SERVER":
				c.Server = v
			case "REBOOT_STRATEGY":
				if !rebootStrategies[v] {
					return c, fmt.Errorf("%s: REBOOT_STRATEGY=%q: want reboot, etcd-lock, best-effort or off", p, v)
				}
				c.RebootStrategy = v
			case "APPID":
				c.AppID = v
			default:
				// Container Linux's files carry other keys (e.g. locksmith's);
				// they are not ours to refuse.
			}
		}
	}
	if c.Group == "" || strings.ContainsAny(c.Group, "/\\ ") {
		return c, fmt.Errorf("update.conf: GROUP=%q is not a channel name", c.Group)
	}
	return c, nil
}

func readKV(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	kv := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("line %d: %q is not KEY=VALUE", n, line)
		}
		kv[strings.TrimSpace(k)] = unquote(strings.TrimSpace(v))
	}
	return kv, sc.Err()
}

func unquote(v string) string {
	if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
		return v[1 : len(v)-1]
	}
	return v
}

// ReadOSRelease returns a key of an os-release file (VERSION_ID, ID).
func ReadOSRelease(path, key string) (string, error) {
	kv, err := readKV(path)
	if err != nil {
		return "", fmt.Errorf("read os-release: %w", err)
	}
	v, ok := kv[key]
	if !ok {
		return "", fmt.Errorf("%s has no %s", path, key)
	}
	return v, nil
}
