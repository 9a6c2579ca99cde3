package stage0

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

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
