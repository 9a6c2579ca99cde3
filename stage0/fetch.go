package stage0

import (
	"context"
	"errors"
	"fmt"

	"github.com/orbit-pods/orbit/image/acifetch"
	"github.com/orbit-pods/orbit/image/source"
	"github.com/orbit-pods/orbit/image/store"
)

// Fetch imports the image that ref names (TRANSPORT:PATH[:REF], or an
// appc ACI file, URL or name) into the store and returns its record.
func Fetch(ctx context.Context, st *store.Store, ref string, opts ...FetchOption) (*store.Image, error) {
	src, ok, err := source.Parse(ref)
	if err != nil {
		return nil, err
	}
	if !ok && (acifetch.IsSource(ref) || acifetch.Discoverable(ref)) {
		return fetchACI(ctx, st, ref, opts)
	}
	if !ok {
		return nil, fmt.Errorf("%q is not an image source: use oci:DIR, oci-archive:FILE, docker-archive:FILE, an ACI (FILE.aci, URL) or an appc name (HOST/PATH[:VERSION])", ref)
	}
	o, err := source.Open(ctx, src)
	if err != nil {
		return nil, err
	}
	defer o.Close()
	var names []string
	if o.Name != "" {
		names = []string{store.NormalizeName(o.Name)}
	}
	img, err := st.Import(ctx, o.Image, names, store.ImportOptions{})
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", src, err)
	}
	return img, nil
}

// ResolveImage returns the stored image ref names, fetching it first when
// ref is a source rather than a name, or an appc name not in the store.
func ResolveImage(ctx context.Context, st *store.Store, ref string, opts ...FetchOption) (*store.Image, error) {
	if _, ok, err := source.Parse(ref); err != nil {
		return nil, err
	} else if ok || acifetch.IsSource(ref) {
		return Fetch(ctx, st, ref, opts...)
	}
	img, err := st.Resolve(ref)
	if errors.Is(err, store.ErrNotFound) && acifetch.Discoverable(ref) {
		return resolveACIName(ctx, st, ref, opts)
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("image %q is not in the store (fetch it first: orbit fetch oci-archive:FILE)", ref)
	}
	return img, err
}
