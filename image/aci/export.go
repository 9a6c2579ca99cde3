package aci

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/orbit-pods/orbit/image/archive"
)

// ManifestFromConfig makes the appc image manifest of an OCI image: name
// is the image's name without tag (made a valid AC identifier), tag
// becomes the version label, and the config's entrypoint, command,
// environment, user, working directory, exposed ports and labels the app.
func ManifestFromConfig(name, tag string, cf *v1.ConfigFile) (*schema.ImageManifest, error) {
	id, err := types.SanitizeACIdentifier(strings.ToLower(name))
	if err != nil {
		return nil, fmt.Errorf("image name %q as an appc name: %w", name, err)
	}
	m := schema.BlankImageManifest()
	m.Name = types.ACIdentifier(id)
	labels := map[types.ACIdentifier]string{"os": cf.OS, "arch": cf.Architecture}
	if tag != "" {
		labels["version"] = tag
	}
	for k, v := range labels {
		if v != "" {
			m.Labels = append(m.Labels, types.Label{Name: k, Value: v})
		}
	}
	sort.Slice(m.Labels, func(i, j int) bool { return m.Labels[i].Name < m.Labels[j].Name })
	c := cf.Config
	exec := append(append([]string(nil), c.Entrypoint...), c.Cmd...)
	if len(exec) == 0 {
		return m, nil // an image with nothing to run has no app
	}
	user, group := "0", "0"
	if c.User != "" {
		u, g, ok := strings.Cut(c.User, ":")
		user = u
		if ok {
			group = g
		}
	}
	app := &types.App{Exec: exec, User: user, Group: group, WorkingDirectory: c.WorkingDir}
	for _, kv := range c.Env {
		k, v, _ := strings.Cut(kv, "=")
		app.Environment.Set(k, v)
	}
	ports := make([]string, 0, len(c.ExposedPorts))
	for p := range c.ExposedPorts {
		ports = append(ports, p)
	}
	sort.Strings(ports)
	for _, p := range ports {
		num, proto, _ := strings.Cut(p, "/")
		if proto == "" {
			proto = "tcp"
		}
		n, err := strconv.ParseUint(num, 10, 16)
		if err != nil {
			continue
		}
		app.Ports = append(app.Ports, types.Port{Name: types.ACName(num + "-" + proto), Protocol: proto, Port: uint(n), Count: 1})
	}
	for k, v := range c.Labels {
		if an, err := types.SanitizeACName(k); err == nil && an != "" {
			m.Annotations.Set(types.ACIdentifier(an), v)
		}
	}
	m.App = app
	return m, nil
}

// WriteACI writes an ACI: the manifest, then rootfs/ holding the tree at
// rootfs with its ownership, modes, links and xattrs.
func WriteACI(w io.Writer, m *schema.ImageManifest, rootfs string) error {
	mb, err := json.Marshal(m)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	if err := tw.WriteHeader(&tar.Header{Name: "manifest", Mode: 0o644, Size: int64(len(mb)), Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	if _, err := tw.Write(mb); err != nil {
		return err
	}
	if err := archive.WriteTree(tw, rootfs, archive.TreeOptions{Prefix: "rootfs", Keep: true}); err != nil {
		return fmt.Errorf("write ACI rootfs: %w", err)
	}
	return tw.Close()
}
