package stage0

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/orbit-pods/orbit/image/source"
	"github.com/orbit-pods/orbit/image/store"
)

// FetchOptions tune how images are fetched.
type FetchOptions struct {
	// InsecureHTTP allows registries over plain HTTP (--insecure-options=http).
	InsecureHTTP bool
	// AuthFile is a docker-style auth file; empty means the default.
	AuthFile string
	// Progress, when set, is called once per image fetched. It returns the
	// hook that sees each layer as it is read, and a func called when the
	// import ends.
	Progress func(ref string) (hook func(store.Layer, io.Reader) io.ReadCloser, done func())
}

type fetchOptionsKey struct{}

// WithFetchOptions gives commands that fetch on demand (run) the options
// the command line set. A context value, because those commands reach
// ResolveImage through Prepare, whose options are about pods.
func WithFetchOptions(ctx context.Context, o FetchOptions) context.Context {
	return context.WithValue(ctx, fetchOptionsKey{}, o)
}

func fetchOptionsFrom(ctx context.Context) FetchOptions {
	o, _ := ctx.Value(fetchOptionsKey{}).(FetchOptions)
	return o
}

// Fetch imports the image that ref names (TRANSPORT:PATH[:REF] or
// docker://...) into the store and returns its record. Options come from
// WithFetchOptions.
func Fetch(ctx context.Context, st *store.Store, ref string) (*store.Image, error) {
	fo := fetchOptionsFrom(ctx)
	src, ok, err := source.Parse(ref)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%q is not an image source: use docker://HOST/NAME[:TAG], oci:DIR, oci-archive:FILE or docker-archive:FILE", ref)
	}
	o, err := source.Open(ctx, src, source.Options{InsecureHTTP: fo.InsecureHTTP, AuthFile: fo.AuthFile})
	if err != nil {
		return nil, fmt.Errorf("fetch %w", err) // Open's errors name the source
	}
	defer o.Close()
	var names []string
	if o.Name != "" {
		names = []string{store.NormalizeName(o.Name)}
	}
	var iopts store.ImportOptions
	if fo.Progress != nil {
		hook, done := fo.Progress(ref)
		defer done()
		iopts.Progress = hook
	}
	img, err := st.Import(ctx, o.Image, names, iopts)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", src, err)
	}
	return img, nil
}

// ResolveImage returns the stored image ref names, fetching it first when
// ref is a source rather than a name.
func ResolveImage(ctx context.Context, st *store.Store, ref string) (*store.Image, error) {
	if _, ok, err := source.Parse(ref); err != nil {
		return nil, err
	} else if ok {
		return Fetch(ctx, st, ref)
	}
	img, err := st.Resolve(ref)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("image %q is not in the store (fetch it first: orbit fetch oci-archive:FILE)", ref)
	}
	return img, err
}
