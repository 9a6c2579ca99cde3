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

// FetchOption changes how Fetch and ResolveImage fetch appc images.
type FetchOption func(*acifetch.Options)

// WithTrust checks signatures against the keys in t.
func WithTrust(t *trust.Store) FetchOption {
	return func(o *acifetch.Options) { o.Trust = t }
}

// WithInsecureOptions skips the checks --insecure-options names: "image"
// (signatures), "http" (plain http), "tls" (certificates), "all".
func WithInsecureOptions(opts []string) FetchOption {
	return func(o *acifetch.Options) {
		for _, s := range opts {
			switch s {
			case "image":
				o.InsecureImage = true
			case "http":
				o.InsecureHTTP = true
			case "tls":
				o.InsecureTLS = true
			case "all":
				o.InsecureImage, o.InsecureHTTP, o.InsecureTLS = true, true, true
			}
		}
	}
}

// Trust opens the trusted keys (<data dir>/trust).
func (e *Env) Trust() *trust.Store {
	return trust.Open(filepath.Join(e.DataDir, "trust"))
}

// FetchOptions are the environment's trusted keys and insecure options.
func (e *Env) FetchOptions() []FetchOption {
	return []FetchOption{WithTrust(e.Trust()), WithInsecureOptions(e.InsecureOptions)}
}

func fetchACI(ctx context.Context, st *store.Store, ref string, opts []FetchOption) (*store.Image, error) {
	var o acifetch.Options
	for _, f := range opts {
		f(&o)
	}
	return acifetch.Fetch(ctx, st, ref, o)
}

// resolveACIName finds an appc name that is not stored under the name as
// given: under the name discovery would store it as (a port in the host is
// not part of an appc name), else by discovery.
func resolveACIName(ctx context.Context, st *store.Store, ref string, opts []FetchOption) (*store.Image, error) {
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
