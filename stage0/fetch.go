package stage0

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/orbit-pods/orbit/image/acifetch"
	"github.com/orbit-pods/orbit/image/source"
	"github.com/orbit-pods/orbit/image/store"
	"github.com/orbit-pods/orbit/image/trust"
	"github.com/orbit-pods/orbit/image/unpack"
)

// FetchOptions tune how images are fetched.
type FetchOptions struct {
	// InsecureHTTP allows plain HTTP (--insecure-options=http);
	// InsecureTLS skips certificate checks (tls); InsecureImage accepts
	// unsigned appc images (image).
	InsecureHTTP, InsecureTLS, InsecureImage bool
	// AuthFile is a docker-style auth file; empty means the default.
	AuthFile string
	// Trust holds the keys appc images must be signed with.
	Trust *trust.Store
	// MaxLayerBytes bounds what one layer may unpack to (decompression
	// bombs, huge sparse files); 0 is DefaultMaxLayerBytes.
	MaxLayerBytes int64
	// Progress, when set, is called once per image fetched. It returns the
	// hook that sees each layer as it is read, and a func called when the
	// import ends.
	Progress func(ref string) (hook func(store.Layer, io.Reader) io.ReadCloser, done func())
	// Name, when set, is the name the image is recorded under instead of
	// its source's (orbit-cri fetches from a mirror what was asked for by
	// another name).
	Name string
}

// SetInsecure applies --insecure-options values.
func (o *FetchOptions) SetInsecure(opts []string) {
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

// DefaultMaxLayerBytes bounds a layer's unpacked content unless
// --max-layer-size says otherwise: far above real images, far below a
// bomb that would fill the disk.
const DefaultMaxLayerBytes = 64 << 30

func (o FetchOptions) maxLayerBytes() int64 {
	if o.MaxLayerBytes > 0 {
		return o.MaxLayerBytes
	}
	return DefaultMaxLayerBytes
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

// Fetch imports the image that ref names (docker://..., TRANSPORT:PATH[:REF],
// or an appc ACI file, URL or name) into the store and returns its record.
// Options come from WithFetchOptions.
func Fetch(ctx context.Context, st *store.Store, ref string) (*store.Image, error) {
	fo := fetchOptionsFrom(ctx)
	src, ok, err := source.Parse(ref)
	if err != nil {
		return nil, err
	}
	if !ok && (acifetch.IsSource(ref) || acifetch.Discoverable(ref)) {
		return fetchACI(ctx, st, ref, fo)
	}
	if !ok {
		return nil, fmt.Errorf("%q is not an image source: use docker://HOST/NAME[:TAG], oci:DIR, oci-archive:FILE, docker-archive:FILE, an ACI (FILE.aci, URL) or an appc name (HOST/PATH[:VERSION])", ref)
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
	if fo.Name != "" {
		names = []string{store.NormalizeName(fo.Name)}
	}
	iopts := store.ImportOptions{Unpack: unpack.Options{MaxBytes: fo.maxLayerBytes()}}
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
// ref is a source rather than a name, or an appc name not in the store.
func ResolveImage(ctx context.Context, st *store.Store, ref string) (*store.Image, error) {
	if _, ok, err := source.Parse(ref); err != nil {
		return nil, err
	} else if ok || acifetch.IsSource(ref) {
		return Fetch(ctx, st, ref)
	}
	img, err := st.Resolve(ref)
	if errors.Is(err, store.ErrNotFound) && acifetch.Discoverable(ref) {
		return resolveACIName(ctx, st, ref, fetchOptionsFrom(ctx))
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("image %q is not in the store (fetch it first: orbit fetch oci-archive:FILE)", ref)
	}
	return img, err
}
