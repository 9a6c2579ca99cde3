// Package acifetch fetches appc ACIs into the image store: from a file, an
// http(s) URL, or by appc meta discovery of a name, with their detached
// OpenPGP signatures and their dependencies.
//
// A fetch gets the ACI and its signature into the store's tmp, reads the
// ACI into a layer (image/aci), verifies the signature against the keys
// trusted for the image's name (image/trust), fetches the dependencies the
// same way, and only then writes anything the store shows: the appc
// manifest blob, and the image through store.Import, named NAME:VERSION.
// So an image that fails verification leaves nothing behind but tmp
// litter, which the store sweeps.
package acifetch

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/appc/spec/discovery"
	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	ggcrtypes "github.com/google/go-containerregistry/pkg/v1/types"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/orbit-pods/orbit/image/aci"
	"github.com/orbit-pods/orbit/image/store"
	"github.com/orbit-pods/orbit/image/trust"
	"github.com/orbit-pods/orbit/image/unpack"
)

// Options say what a fetch may skip and whom it trusts.
type Options struct {
	// Trust holds the keys signatures are checked against.
	Trust *trust.Store
	// InsecureImage skips signature verification.
	InsecureImage bool
	// InsecureHTTP allows plain http URLs and discovery over http.
	InsecureHTTP bool
	// InsecureTLS skips TLS certificate checks.
	InsecureTLS bool
	// MaxLayerBytes bounds what an image's layer unpacks to; 0 is no bound.
	MaxLayerBytes int64
}

// maxDepth bounds dependency chains (and catches cycles the name check
// misses).
const maxDepth = 32

type fetcher struct {
	st     *store.Store
	o      Options
	client *http.Client
	tmp    string
	// inProgress are the names being fetched, to refuse dependency cycles.
	inProgress map[string]bool
}

// Fetch fetches the ACI ref names (see ParseRef) and its dependencies into
// st and returns the stored image.
func Fetch(ctx context.Context, st *store.Store, ref string, o Options) (*store.Image, error) {
	r, err := ParseRef(ref)
	if err != nil {
		return nil, err
	}
	tmp, release, err := st.TempDir("aci-fetch-")
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", ref, err)
	}
	defer release()
	f := &fetcher{st: st, o: o, tmp: tmp, inProgress: map[string]bool{}}
	f.client = &http.Client{}
	if o.InsecureTLS {
		f.client.Transport = &http.Transport{
			Proxy:           http.ProxyFromEnvironment,
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
		}
	}
	return f.fetch(ctx, r, 0, "")
}

// fetched is an ACI and its signature, on disk in tmp.
type fetched struct {
	aciPath string
	sig     []byte
	// where says where it came from, for messages.
	where string
}

// fetch fetches and stores r; wantID, when set, is the appc image ID a
// dependency asks for, checked before anything is stored.
func (f *fetcher) fetch(ctx context.Context, r Ref, depth int, wantID string) (*store.Image, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("fetch %s: dependencies nested deeper than %d", r, maxDepth)
	}
	var (
		got *fetched
		err error
	)
	switch r.Kind {
	case File:
		got, err = f.getFile(r.Path)
	case URL:
		got, err = f.getURL(ctx, r.URL, r.URL+".asc")
	case Discovery:
		got, err = f.discover(ctx, r)
	}
	if err != nil {
		return nil, err
	}
	file, err := os.Open(got.aciPath)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", r, err)
	}
	defer file.Close()
	a, err := aci.Read(ctx, file, f.tmp)
	if err != nil {
		return nil, fmt.Errorf("read ACI %s: %w", got.where, err)
	}
	defer a.Close()
	name := a.Manifest.Name.String()
	if wantID != "" && !idMatches(a.ID, wantID) {
		return nil, fmt.Errorf("image %s from %s is %s, the dependency asks for %s", name, got.where, a.ID, wantID)
	}
	if r.Kind == Discovery {
		if err := matches(a.Manifest, r.App); err != nil {
			return nil, fmt.Errorf("image %s from %s: %w", r.App, got.where, err)
		}
	}
	if !f.o.InsecureImage {
		if f.o.Trust == nil {
			return nil, fmt.Errorf("image %s from %s: %w", name, got.where, trust.ErrNoKeys)
		}
		if _, err := f.o.Trust.Verify(name, file, got.sig); err != nil {
			return nil, fmt.Errorf("image %s from %s: %w (--insecure-options=image skips signature checks)", name, got.where, err)
		}
	}
	if f.inProgress[name] {
		return nil, fmt.Errorf("image %s: dependency cycle", name)
	}
	f.inProgress[name] = true
	defer delete(f.inProgress, name)

	var lower []v1.Layer
	for _, d := range a.Manifest.Dependencies {
		dep, err := f.dependency(ctx, d, r, depth)
		if err != nil {
			return nil, fmt.Errorf("image %s: dependency %s: %w", name, d.ImageName, err)
		}
		for _, l := range dep.Layers {
			fl, err := storedLayer(f.st, l)
			if err != nil {
				return nil, fmt.Errorf("image %s: dependency %s: %w", name, d.ImageName, err)
			}
			lower = append(lower, fl.Layer())
		}
	}

	manifestDigest := digest.FromBytes(a.RawManifest)
	img, err := aci.Image(a, lower, map[string]string{
		aci.AnnotationManifest: manifestDigest.String(),
		aci.AnnotationImageID:  a.ID,
	})
	if err != nil {
		return nil, err
	}
	if err := f.writeBlob(manifestDigest, a.RawManifest); err != nil {
		return nil, fmt.Errorf("store appc manifest of %s: %w", name, err)
	}
	stored, err := f.st.Import(ctx, img, []string{aci.StoreName(a.Manifest)}, store.ImportOptions{Unpack: unpack.Options{MaxBytes: f.o.MaxLayerBytes}})
	if err != nil {
		return nil, fmt.Errorf("import image %s from %s: %w", name, got.where, err)
	}
	return stored, nil
}

// matches checks that discovery gave the image that was asked for: a
// server must not hand out another name's image under this one's keys.
func matches(m *schema.ImageManifest, app *discovery.App) error {
	if m.Name != app.Name {
		return fmt.Errorf("discovery served an image named %s", m.Name)
	}
	for k, v := range app.Labels {
		if k == "version" && v == "latest" {
			continue
		}
		if got, _ := m.GetLabel(k.String()); got != v {
			return fmt.Errorf("discovery served an image with %s=%q, want %q", k, got, v)
		}
	}
	return nil
}

func (f *fetcher) writeBlob(d digest.Digest, b []byte) error {
	if f.st.HasBlob(d) {
		return nil
	}
	w, err := f.st.NewBlobWriter(d)
	if err != nil {
		return err
	}
	defer w.Discard()
	if _, err := w.Write(b); err != nil {
		return err
	}
	return w.Commit()
}

// dependency finds a dependency in the store (by appc image ID, else by
// name and version with matching labels) or fetches it by discovery, on the
// port its dependent was discovered on when the host is the same.
func (f *fetcher) dependency(ctx context.Context, d types.Dependency, parent Ref, depth int) (*store.Image, error) {
	if d.ImageID != nil {
		img, err := findByImageID(f.st, d.ImageID.String())
		if err != nil {
			return nil, err
		}
		if img != nil {
			return img, nil
		}
	}
	labels := map[types.ACIdentifier]string{}
	for _, l := range d.Labels {
		labels[l.Name] = l.Value
	}
	app, err := discovery.NewApp(d.ImageName.String(), labels)
	if err != nil {
		return nil, err
	}
	r := Ref{Kind: Discovery, App: app, raw: app.String()}
	if d.ImageID == nil {
		img, err := f.st.Resolve(r.StoreName())
		if err == nil && labelsMatch(f.st, img, labels) {
			return img, nil
		}
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
	}
	if parent.Kind == Discovery && hostOf(parent.App.Name.String()) == hostOf(app.Name.String()) {
		r.Port = parent.Port
	}
	wantID := ""
	if d.ImageID != nil {
		wantID = d.ImageID.String()
	}
	return f.fetch(ctx, r, depth+1, wantID)
}

func hostOf(name string) string {
	h, _, _ := strings.Cut(name, "/")
	return h
}

// idMatches compares appc image IDs; a dependency may give a prefix of at
// least half the hash, as appc tools print them.
func idMatches(have, want string) bool {
	const minLen = len("sha512-") + 64
	return have != "" && (have == want || len(want) >= minLen && strings.HasPrefix(have, want))
}

func findByImageID(st *store.Store, id string) (*store.Image, error) {
	imgs, err := st.List()
	if err != nil {
		return nil, err
	}
	for _, img := range imgs {
		ann, err := annotations(st, img)
		if err != nil {
			continue // not every image is one of ours to read
		}
		if idMatches(ann[aci.AnnotationImageID], id) {
			return img, nil
		}
	}
	return nil, nil
}

func annotations(st *store.Store, img *store.Image) (map[string]string, error) {
	b, err := st.ReadBlob(img.ID)
	if err != nil {
		return nil, err
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", img.ID, err)
	}
	return m.Annotations, nil
}

// labelsMatch checks a stored image's labels (its config's, which hold the
// appc labels) against a dependency's.
func labelsMatch(st *store.Store, img *store.Image, want map[types.ACIdentifier]string) bool {
	b, err := st.ReadBlob(img.Config)
	if err != nil {
		return false
	}
	var c ocispec.Image
	if err := json.Unmarshal(b, &c); err != nil {
		return false
	}
	for k, v := range want {
		if c.Config.Labels[k.String()] != v {
			return false
		}
	}
	return true
}

// storedLayer is a layer the store holds, as a v1.Layer for stacking.
func storedLayer(st *store.Store, l store.Layer) (*aci.FileLayer, error) {
	d, err := v1.NewHash(l.Digest.String())
	if err != nil {
		return nil, err
	}
	diff, err := v1.NewHash(l.DiffID.String())
	if err != nil {
		return nil, err
	}
	return &aci.FileLayer{Path: st.BlobPath(l.Digest), Digest: d, DiffID: diff, Size: l.Size, MediaType: ggcrtypes.MediaType(l.MediaType)}, nil
}

// getFile takes a local ACI and the .asc beside it, if any. The ACI is
// copied to tmp first: it is read twice (converted, then verified), and a
// file someone else can write could change between the two.
func (f *fetcher) getFile(p string) (*fetched, error) {
	in, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", p, err)
	}
	defer in.Close()
	out, err := os.CreateTemp(f.tmp, "aci-")
	if err != nil {
		return nil, err
	}
	defer out.Close()
	if _, err := io.Copy(out, in); err != nil {
		return nil, fmt.Errorf("fetch %s: %w", p, err)
	}
	if err := out.Close(); err != nil {
		return nil, fmt.Errorf("fetch %s: %w", p, err)
	}
	got := &fetched{aciPath: out.Name(), where: p}
	if !f.o.InsecureImage {
		sig, err := os.ReadFile(p + ".asc")
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("read signature of %s: %w", p, err)
		}
		got.sig = sig
	}
	return got, nil
}

// getURL downloads an ACI and, unless signatures are skipped, its
// signature (a missing one makes the image unsigned).
func (f *fetcher) getURL(ctx context.Context, u, sigURL string) (*fetched, error) {
	p, err := f.download(ctx, u)
	if err != nil {
		return nil, err
	}
	got := &fetched{aciPath: p, where: u}
	if !f.o.InsecureImage {
		got.sig, err = f.downloadSmall(ctx, sigURL)
		if err != nil && !errors.Is(err, errNotFound) {
			return nil, err
		}
	}
	return got, nil
}

// discover finds an ACI by appc meta discovery and downloads it and its
// signature from the first endpoint that serves them.
func (f *fetcher) discover(ctx context.Context, r Ref) (*fetched, error) {
	var insecure discovery.InsecureOption
	if f.o.InsecureHTTP {
		insecure |= discovery.InsecureHTTP
	}
	if f.o.InsecureTLS {
		insecure |= discovery.InsecureTLS
	}
	eps, attempts, err := discovery.DiscoverACIEndpoints(*r.App, nil, insecure, r.Port)
	if err != nil || len(eps) == 0 {
		var why []string
		for _, a := range attempts {
			why = append(why, fmt.Sprintf("%s: %v", a.Prefix, a.Error))
		}
		if err == nil {
			err = errors.New("no ac-discovery meta tag matched")
		}
		if !f.o.InsecureHTTP {
			why = append(why, "plain http is not tried without --insecure-options=http")
		}
		return nil, fmt.Errorf("discover %s: %w (%s)", r.App, err, strings.Join(why, "; "))
	}
	var errs []error
	for _, ep := range eps {
		got, err := f.getURL(ctx, ep.ACI, ep.ASC)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		return got, nil
	}
	return nil, fmt.Errorf("fetch %s: %w", r.App, errors.Join(errs...))
}

var errNotFound = errors.New("not found")

// maxSignature bounds a signature read into memory.
const maxSignature = 1 << 20

func (f *fetcher) get(ctx context.Context, u string) (*http.Response, error) {
	pu, err := url.Parse(u)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", u, err)
	}
	switch pu.Scheme {
	case "https":
	case "http":
		if !f.o.InsecureHTTP {
			return nil, fmt.Errorf("fetch %s: plain http is refused (--insecure-options=http allows it)", u)
		}
	default:
		return nil, fmt.Errorf("fetch %s: unsupported scheme %q", u, pu.Scheme)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", u, err)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", u, err)
	}
	if resp.StatusCode == http.StatusNotFound {
		resp.Body.Close()
		return nil, fmt.Errorf("fetch %s: %w", u, errNotFound)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("fetch %s: %s", u, resp.Status)
	}
	return resp, nil
}

func (f *fetcher) download(ctx context.Context, u string) (string, error) {
	resp, err := f.get(ctx, u)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	out, err := os.CreateTemp(f.tmp, "aci-")
	if err != nil {
		return "", err
	}
	defer out.Close()
	if _, err := io.Copy(out, resp.Body); err != nil {
		return "", fmt.Errorf("fetch %s: %w", u, err)
	}
	if err := out.Close(); err != nil {
		return "", err
	}
	return out.Name(), nil
}

func (f *fetcher) downloadSmall(ctx context.Context, u string) ([]byte, error) {
	resp, err := f.get(ctx, u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxSignature+1))
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", u, err)
	}
	if len(b) > maxSignature {
		return nil, fmt.Errorf("fetch %s: larger than %d bytes", u, maxSignature)
	}
	return b, nil
}
