package stage0

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/appc/spec/schema"
	digest "github.com/opencontainers/go-digest"

	"github.com/orbit-pods/orbit/image/aci"
	"github.com/orbit-pods/orbit/image/acifetch"
	"github.com/orbit-pods/orbit/image/store"
	"github.com/orbit-pods/orbit/image/trust"
)

// Trust opens the trusted keys (<data dir>/trust).
func (e *Env) Trust() *trust.Store {
	return trust.Open(filepath.Join(e.DataDir, "trust"))
}

func fetchACI(ctx context.Context, st *store.Store, ref string, fo FetchOptions) (*store.Image, error) {
	return acifetch.Fetch(ctx, st, ref, acifetch.Options{
		Trust:         fo.Trust,
		InsecureImage: fo.InsecureImage,
		InsecureHTTP:  fo.InsecureHTTP,
		InsecureTLS:   fo.InsecureTLS,
		MaxLayerBytes: fo.maxLayerBytes(),
	})
}

// resolveACIName finds an appc name that is not stored under the name as
// given: under the name discovery would store it as (a port in the host is
// not part of an appc name), else by discovery.
func resolveACIName(ctx context.Context, st *store.Store, ref string, opts FetchOptions) (*store.Image, error) {
	r, err := acifetch.ParseRef(ref)
	if err != nil {
		return nil, err
	}
	img, err := st.Resolve(r.StoreName())
	if err == nil || !errors.Is(err, store.ErrNotFound) {
		return img, err
	}
	img, err = fetchACI(ctx, st, ref, opts)
	if err != nil {
		return nil, fmt.Errorf("image %q is not in the store, and discovery failed: %w", ref, err)
	}
	return img, nil
}

// appcHandlers reads the event handlers of an image made from an ACI.
func appcHandlers(st *store.Store, img *store.Image) (preStart, postStop []string, err error) {
	am, err := storedAppcManifest(st, img)
	if err != nil || am == nil || am.App == nil {
		return nil, nil, err
	}
	for _, h := range am.App.EventHandlers {
		switch h.Name {
		case "pre-start":
			preStart = h.Exec
		case "post-stop":
			postStop = h.Exec
		}
	}
	return preStart, postStop, nil
}

// storedAppcManifest is the appc manifest an image made from an ACI came
// with, kept by the store beside it; nil for any other image.
func storedAppcManifest(st *store.Store, img *store.Image) (*schema.ImageManifest, error) {
	raw, err := st.ReadBlob(img.ID)
	if err != nil {
		return nil, err
	}
	var m struct {
		Annotations map[string]string `json:"annotations"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", img.ID, err)
	}
	d, ok := m.Annotations[aci.AnnotationManifest]
	if !ok {
		return nil, nil
	}
	b, err := st.ReadBlob(digest.Digest(d))
	if err != nil {
		return nil, fmt.Errorf("appc manifest of %s: %w", img.ID, err)
	}
	var am schema.ImageManifest
	if err := json.Unmarshal(b, &am); err != nil {
		return nil, fmt.Errorf("appc manifest of %s: %w", img.ID, err)
	}
	return &am, nil
}
