package stage1

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/orbit-pods/orbit/pod"
)

// writeEtc writes the files every app of the pod sees in /etc: hosts (the
// pod's names and --hosts-entry lines), hostname, and resolv.conf when the
// pod was given DNS settings. Apps bind-mount them, so they agree.
func writeEtc(m *pod.Manifest, dir pod.Dir) error {
	etc := dir.EtcDir()
	if err := os.MkdirAll(etc, 0o755); err != nil {
		return err
	}
	var hosts strings.Builder
	hosts.WriteString("127.0.0.1\tlocalhost localhost.localdomain\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	fmt.Fprintf(&hosts, "127.0.1.1\t%s\n", m.Hostname)
	for _, h := range m.HostsEntries {
		fmt.Fprintf(&hosts, "%s\t%s\n", h.IP, strings.Join(h.Names, " "))
	}
	files := map[string]string{
		"hosts":    hosts.String(),
		"hostname": m.Hostname + "\n",
	}
	if m.DNS != nil {
		if m.DNS.HostResolvConf {
			b, err := os.ReadFile("/etc/resolv.conf")
			if err != nil {
				return fmt.Errorf("copy the host's resolv.conf: %w", err)
			}
			files["resolv.conf"] = string(b)
		} else {
			var rc strings.Builder
			for _, s := range m.DNS.Servers {
				fmt.Fprintf(&rc, "nameserver %s\n", s)
			}
			if len(m.DNS.Search) > 0 {
				fmt.Fprintf(&rc, "search %s\n", strings.Join(m.DNS.Search, " "))
			}
			if len(m.DNS.Options) > 0 {
				fmt.Fprintf(&rc, "options %s\n", strings.Join(m.DNS.Options, " "))
			}
			files["resolv.conf"] = rc.String()
		}
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(etc, name), []byte(content), 0o644); err != nil {
			return fmt.Errorf("write pod %s: %w", name, err)
		}
	}
	return nil
}

// etcMounts bind-mounts the pod's /etc files into an app.
func etcMounts(m *pod.Manifest, dir pod.Dir) []specs.Mount {
	names := []string{"hosts", "hostname"}
	if m.DNS != nil {
		names = append(names, "resolv.conf")
	}
	opts := []string{"bind", "ro", "nosuid", "nodev", "noexec"}
	if m.UserNamespace != nil {
		// The pod's own files are its root's.
		opts = append(opts, "idmap")
	}
	var out []specs.Mount
	for _, n := range names {
		out = append(out, specs.Mount{
			Destination: "/etc/" + n,
			Type:        "bind",
			Source:      filepath.Join(dir.EtcDir(), n),
			Options:     opts,
		})
	}
	return out
}

// volumeMounts turns an app's mount points into bind mounts of the pod's
// volumes.
func volumeMounts(m *pod.Manifest, dir pod.Dir, app *pod.App, trees map[string]string) ([]specs.Mount, error) {
	vols := map[string]pod.Volume{}
	for _, v := range m.Volumes {
		vols[v.Name] = v
	}
	var out []specs.Mount
	for _, mp := range app.Mounts {
		v, ok := vols[mp.Volume]
		if !ok {
			return nil, fmt.Errorf("app %s: no volume %q", app.Name, mp.Volume)
		}
		src := v.Source
		if v.Kind == pod.VolumeEmpty {
			src = dir.VolumeDir(v.Name)
		}
		if t, ok := trees[v.Name]; ok {
			src = t
		} else if mp.Propagates() {
			return nil, errNoTree(app, mp)
		}
		opts := []string{"rbind", "nosuid", "nodev"}
		if v.ReadOnly || mp.ReadOnly || mp.RecursiveReadOnly {
			opts = append(opts, "ro")
		}
		if mp.RecursiveReadOnly {
			opts = append(opts, "rro")
		}
		if mp.Propagation != "" {
			opts = append(opts, mp.Propagation)
		}
		if m.UserNamespace != nil && (mp.IDMapped || v.Kind == pod.VolumeEmpty) {
			// runc maps the mount and those under it with the
			// namespace the app joins.
			opts = append(opts, "ridmap")
		}
		out = append(out, specs.Mount{Destination: mp.Path, Type: "bind", Source: src, Options: opts})
	}
	return out, nil
}

// errNoTree refuses a propagating mount whose volume came without a tree
// cloned from the host.
func errNoTree(app *pod.App, mp pod.MountPoint) error {
	return fmt.Errorf("app %s: mount %s: %s propagation is offered only to apps added to a running sandbox pod with their volumes (orbit-cri's containers)", app.Name, mp.Path, mp.Propagation)
}

// makeEmptyVolumes creates the pod's empty volumes.
func makeEmptyVolumes(m *pod.Manifest, dir pod.Dir) error {
	for _, v := range m.Volumes {
		if v.Kind != pod.VolumeEmpty {
			continue
		}
		p := dir.VolumeDir(v.Name)
		mode := v.Mode
		if mode == 0 {
			mode = 0o755
		}
		if err := os.MkdirAll(p, 0o700); err != nil {
			return fmt.Errorf("volume %s: %w", v.Name, err)
		}
		if err := os.Chown(p, int(v.UID), int(v.GID)); err != nil {
			return fmt.Errorf("volume %s: %w", v.Name, err)
		}
		if err := os.Chmod(p, os.FileMode(mode)); err != nil {
			return fmt.Errorf("volume %s: %w", v.Name, err)
		}
	}
	return nil
}
