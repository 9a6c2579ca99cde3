package aci

import (
	"fmt"
	"time"

	"github.com/appc/spec/schema"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Annotations of the OCI manifest of an image made from an ACI.
const (
	// AnnotationManifest is the digest of the blob holding the appc
	// manifest as the ACI had it, kept for cat-manifest and the metadata
	// service; whoever stores the image stores that blob too.
	AnnotationManifest = "org.orbit-pods.appc.manifest"
	// AnnotationImageID is the appc image ID (sha512-...), which
	// dependencies may name.
	AnnotationImageID = "org.orbit-pods.appc.image-id"
)

// appc architecture labels and their OCI names.
var archs = map[string][2]string{
	"amd64":   {"amd64", ""},
	"i386":    {"386", ""},
	"aarch64": {"arm64", ""},
	"armv7l":  {"arm", "v7"},
	"armv7b":  {"arm", "v7"},
	"armv6l":  {"arm", "v6"},
	"ppc64":   {"ppc64", ""},
	"ppc64le": {"ppc64le", ""},
	"s390x":   {"s390x", ""},
}

// Config makes the OCI image config of an appc manifest: exec is the
// entrypoint, environment, working directory, user:group, ports (as
// exposed ports) and mount points (as volumes) carry over, and annotations
// and labels become labels. Isolators, event handlers and supplementary
// groups have no OCI image config counterpart and are left out; the raw
// manifest keeps them.
func Config(m *schema.ImageManifest) v1.ConfigFile {
	cf := v1.ConfigFile{
		Created: v1.Time{Time: time.Unix(0, 0).UTC()},
		OS:      "linux",
		RootFS:  v1.RootFS{Type: "layers"},
	}
	if os, ok := m.GetLabel("os"); ok {
		cf.OS = os
	}
	if a, ok := m.GetLabel("arch"); ok {
		if oci, known := archs[a]; known {
			cf.Architecture, cf.Variant = oci[0], oci[1]
		} else {
			cf.Architecture = a
		}
	}
	labels := map[string]string{}
	for _, a := range m.Annotations {
		labels[a.Name.String()] = a.Value
	}
	for _, l := range m.Labels {
		labels[l.Name.String()] = l.Value
	}
	if len(labels) > 0 {
		cf.Config.Labels = labels
	}
	app := m.App
	if app == nil {
		return cf
	}
	cf.Config.Entrypoint = append([]string(nil), app.Exec...)
	for _, e := range app.Environment {
		cf.Config.Env = append(cf.Config.Env, e.Name+"="+e.Value)
	}
	cf.Config.WorkingDir = app.WorkingDirectory
	cf.Config.User = app.User + ":" + app.Group
	for _, p := range app.Ports {
		if cf.Config.ExposedPorts == nil {
			cf.Config.ExposedPorts = map[string]struct{}{}
		}
		n := p.Count
		if n == 0 {
			n = 1
		}
		for i := uint(0); i < n; i++ {
			cf.Config.ExposedPorts[fmt.Sprintf("%d/%s", p.Port+i, p.Protocol)] = struct{}{}
		}
	}
	for _, mp := range app.MountPoints {
		if cf.Config.Volumes == nil {
			cf.Config.Volumes = map[string]struct{}{}
		}
		cf.Config.Volumes[mp.Path] = struct{}{}
	}
	return cf
}

// Image makes the OCI image of a: the layers of its dependencies (lower,
// bottom first) under its own, its config from its manifest, and the
// manifest annotations given (AnnotationManifest and AnnotationImageID).
func Image(a *ACI, lower []v1.Layer, annotations map[string]string) (v1.Image, error) {
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	layers := append(append([]v1.Layer(nil), lower...), a.Layer.Layer())
	img, err := mutate.AppendLayers(img, layers...)
	if err != nil {
		return nil, fmt.Errorf("image of ACI %s: %w", a.Manifest.Name, err)
	}
	base, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image of ACI %s: %w", a.Manifest.Name, err)
	}
	cf := Config(a.Manifest)
	cf.RootFS = base.RootFS
	img, err = mutate.ConfigFile(img, &cf)
	if err != nil {
		return nil, fmt.Errorf("image of ACI %s: %w", a.Manifest.Name, err)
	}
	if len(annotations) > 0 {
		img = mutate.Annotations(img, annotations).(v1.Image)
	}
	return img, nil
}
