package stage0

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/appc/spec/schema"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/orbit-pods/orbit/image/aci"
	"github.com/orbit-pods/orbit/image/store"
)

// ExportACI writes a stored image as an ACI: its layers flattened into
// rootfs/, and an appc manifest: the one it came with if it was an ACI
// (less its dependencies, which the flattened root now holds), else one
// made from its OCI config.
func ExportACI(ctx context.Context, st *store.Store, img *store.Image, w io.Writer) error {
	tmp, release, err := st.TempDir("export-aci-")
	if err != nil {
		return err
	}
	defer release()
	rootfs := filepath.Join(tmp, "rootfs")
	if err := st.Render(ctx, img, rootfs); err != nil {
		return err
	}
	m, err := appcManifestOf(st, img)
	if err != nil {
		return err
	}
	return aci.WriteACI(w, m, rootfs)
}

func appcManifestOf(st *store.Store, img *store.Image) (*schema.ImageManifest, error) {
	m, err := storedAppcManifest(st, img)
	if err != nil {
		return nil, err
	}
	if m != nil {
		m.Dependencies = nil
		return m, nil
	}
	cb, err := st.ReadBlob(img.Config)
	if err != nil {
		return nil, err
	}
	var cf v1.ConfigFile
	if err := json.Unmarshal(cb, &cf); err != nil {
		return nil, fmt.Errorf("config %s: %w", img.Config, err)
	}
	name, tag := "image", ""
	if len(img.Names) > 0 {
		name = img.Names[0]
		if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
			name, tag = name[:i], name[i+1:]
		}
	}
	return aci.ManifestFromConfig(name, tag, &cf)
}
