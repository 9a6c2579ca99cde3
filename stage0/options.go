package stage0

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	units "github.com/docker/go-units"
	"github.com/moby/sys/capability"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/orbit-pods/orbit/pod"
)

// The parsers of rkt-style flag values. Each returns an error that quotes
// the value and says what is wrong with it.

// keyValues splits "a,k=v,k2=v2" into its first field and the pairs.
func keyValues(s string) (string, map[string]string, error) {
	parts := strings.Split(s, ",")
	kv := map[string]string{}
	for _, p := range parts[1:] {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			return "", nil, fmt.Errorf("%q: %q is not key=value", s, p)
		}
		if _, dup := kv[k]; dup {
			return "", nil, fmt.Errorf("%q: %s given twice", s, k)
		}
		kv[k] = v
	}
	return parts[0], kv, nil
}

func parseBool(spec, k, v string) (bool, error) {
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%q: %s=%q is not true or false", spec, k, v)
	}
	return b, nil
}

// ParseVolume reads --volume NAME,kind=host,source=PATH[,readOnly=BOOL] or
// NAME,kind=empty[,mode=0755][,uid=N][,gid=N][,readOnly=BOOL].
func ParseVolume(s string) (pod.Volume, error) {
	name, kv, err := keyValues(s)
	if err != nil {
		return pod.Volume{}, fmt.Errorf("--volume %w", err)
	}
	v := pod.Volume{Name: name, Kind: kv["kind"], Source: kv["source"]}
	if !pod.ValidAppName(name) {
		return v, fmt.Errorf("--volume %q: invalid volume name %q (lower case letters, digits, '-' and '.')", s, name)
	}
	for k, val := range kv {
		switch k {
		case "kind", "source":
		case "readOnly":
			if v.ReadOnly, err = parseBool(s, k, val); err != nil {
				return v, fmt.Errorf("--volume %w", err)
			}
		case "mode", "uid", "gid":
			if v.Kind != pod.VolumeEmpty {
				return v, fmt.Errorf("--volume %q: %s applies to kind=empty only", s, k)
			}
			base := 10
			if k == "mode" {
				base = 8
			}
			n, err := strconv.ParseUint(val, base, 32)
			if err != nil {
				return v, fmt.Errorf("--volume %q: %s=%q is not a number", s, k, val)
			}
			switch k {
			case "mode":
				v.Mode = uint32(n)
			case "uid":
				v.UID = uint32(n)
			case "gid":
				v.GID = uint32(n)
			}
		default:
			return v, fmt.Errorf("--volume %q: unknown key %q", s, k)
		}
	}
	switch v.Kind {
	case pod.VolumeHost:
		if !filepath.IsAbs(v.Source) {
			return v, fmt.Errorf("--volume %q: kind=host needs source= an absolute path", s)
		}
		if _, err := os.Stat(v.Source); err != nil {
			return v, fmt.Errorf("--volume %q: source: %w", s, err)
		}
	case pod.VolumeEmpty:
		if v.Source != "" {
			return v, fmt.Errorf("--volume %q: kind=empty takes no source", s)
		}
	case "":
		return v, fmt.Errorf("--volume %q: kind= is required (host or empty)", s)
	default:
		return v, fmt.Errorf("--volume %q: unknown kind %q (host or empty)", s, v.Kind)
	}
	return v, nil
}

// ParseMount reads --mount volume=NAME,target=PATH[,readOnly=BOOL].
func ParseMount(s string) (pod.MountPoint, error) {
	first, kv, err := keyValues("," + s)
	if err != nil || first != "" {
		return pod.MountPoint{}, fmt.Errorf("--mount %q: want volume=NAME,target=PATH", s)
	}
	mp := pod.MountPoint{Volume: kv["volume"], Path: kv["target"]}
	for k, v := range kv {
		switch k {
		case "volume", "target":
		case "readOnly":
			if mp.ReadOnly, err = parseBool(s, k, v); err != nil {
				return mp, fmt.Errorf("--mount %w", err)
			}
		default:
			return mp, fmt.Errorf("--mount %q: unknown key %q", s, k)
		}
	}
	if mp.Volume == "" || !filepath.IsAbs(mp.Path) {
		return mp, fmt.Errorf("--mount %q: want volume=NAME,target=/absolute/path", s)
	}
	if filepath.Clean(mp.Path) != mp.Path || strings.Contains(mp.Path, "..") {
		return mp, fmt.Errorf("--mount %q: target %q is not a clean path (no . or .. parts)", s, mp.Path)
	}
	return mp, nil
}

// ParseMemory reads a memory limit: bytes or a size with a binary unit
// (256M, 1G).
func ParseMemory(s string) (int64, error) {
	n, err := units.RAMInBytes(s)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("--memory %q: want a size such as 256M or 1G", s)
	}
	if n < 4<<20 {
		return 0, fmt.Errorf("--memory %q: below 4M, the kernel's practical minimum", s)
	}
	return n, nil
}

// ParseCPU reads a CPU limit in cores ("2", "0.5") or millicores ("500m")
// and returns it as a CFS quota per 100ms period.
func ParseCPU(s string) (quota int64, period uint64, err error) {
	var milli float64
	if m, ok := strings.CutSuffix(s, "m"); ok {
		milli, err = strconv.ParseFloat(m, 64)
	} else {
		milli, err = strconv.ParseFloat(s, 64)
		milli *= 1000
	}
	if err != nil || milli < 1 {
		return 0, 0, fmt.Errorf("--cpu %q: want cores (0.5, 2) or millicores (500m), at least 1m", s)
	}
	period = 100000
	return int64(milli * float64(period) / 1000), period, nil
}

// ParseCaps reads a comma-separated list of capabilities, with or without
// the CAP_ prefix, in any case.
func ParseCaps(flag, s string) ([]string, error) {
	known := map[string]bool{}
	for _, c := range capability.ListKnown() {
		known["CAP_"+strings.ToUpper(c.String())] = true
	}
	var out []string
	for _, c := range strings.Split(s, ",") {
		c = strings.ToUpper(strings.TrimSpace(c))
		if c == "" {
			continue
		}
		if !strings.HasPrefix(c, "CAP_") {
			c = "CAP_" + c
		}
		if !known[c] {
			return nil, fmt.Errorf("%s: unknown capability %q", flag, c)
		}
		out = append(out, c)
	}
	return out, nil
}

// capsFor applies --caps-retain (exactly those) or --caps-remove (the
// default set less those) to the default set.
func capsFor(retain, remove, defaults []string) *specs.LinuxCapabilities {
	if retain == nil && remove == nil {
		return nil
	}
	set := retain
	if retain == nil {
		for _, c := range defaults {
			drop := false
			for _, r := range remove {
				drop = drop || r == c
			}
			if !drop {
				set = append(set, c)
			}
		}
	}
	if set == nil {
		set = []string{}
	}
	return &specs.LinuxCapabilities{Bounding: set, Effective: set, Permitted: set}
}

// DefaultPrivateUsers is how many IDs --private-users maps when it is
// given no size: the 16 bits of IDs images use.
const DefaultPrivateUsers = 65536

// ParsePrivateUsers reads --private-users=HOSTID[:SIZE]: the pod's user
// and group IDs from 0 are the host's from HOSTID, SIZE of them.
func ParsePrivateUsers(s string) (*pod.UserNamespace, error) {
	host, size, sized := strings.Cut(s, ":")
	h, err := strconv.ParseUint(host, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("--private-users %q: want HOSTID[:SIZE], the first host ID of the pod's range", s)
	}
	n := uint64(DefaultPrivateUsers)
	if sized {
		if n, err = strconv.ParseUint(size, 10, 32); err != nil || n == 0 {
			return nil, fmt.Errorf("--private-users %q: SIZE is a count of IDs of at least 1", s)
		}
	}
	ms := []specs.LinuxIDMapping{{ContainerID: 0, HostID: uint32(h), Size: uint32(n)}}
	u := &pod.UserNamespace{UIDMappings: ms, GIDMappings: ms}
	if err := u.Validate(); err != nil {
		return nil, fmt.Errorf("--private-users %q: %w", s, err)
	}
	return u, nil
}

// ParseHostsEntry reads --hosts-entry IP=NAME[,NAME...].
func ParseHostsEntry(s string) (pod.HostsEntry, error) {
	ip, names, ok := strings.Cut(s, "=")
	if !ok || net.ParseIP(ip) == nil || names == "" {
		return pod.HostsEntry{}, fmt.Errorf("--hosts-entry %q: want IP=NAME[,NAME...]", s)
	}
	return pod.HostsEntry{IP: ip, Names: strings.Split(names, ",")}, nil
}

// ReadEnvFile reads K=V lines; blank lines and # comments are skipped.
func ReadEnvFile(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--set-env-file: %w", err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if k, _, ok := strings.Cut(l, "="); !ok || k == "" {
			return nil, fmt.Errorf("--set-env-file %s:%d: %q is not K=V", path, n, l)
		}
		out = append(out, l)
	}
	return out, sc.Err()
}

// mergeEnv sets each K=V of over in env, replacing an earlier K.
func mergeEnv(env []string, over ...string) []string {
	out := append([]string(nil), env...)
	for _, kv := range over {
		k, _, _ := strings.Cut(kv, "=")
		replaced := false
		for i, e := range out {
			if strings.HasPrefix(e, k+"=") {
				out[i], replaced = kv, true
			}
		}
		if !replaced {
			out = append(out, kv)
		}
	}
	return out
}
