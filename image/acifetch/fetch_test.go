package acifetch

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	digest "github.com/opencontainers/go-digest"

	"github.com/orbit-pods/orbit/image/aci"
	"github.com/orbit-pods/orbit/image/store"
	"github.com/orbit-pods/orbit/image/trust"
)

// makeACI writes a gzipped ACI named name (version 1.0) holding files,
// with the given dependencies (a JSON array, or "").
func makeACI(t *testing.T, name string, files map[string]string, deps string) []byte {
	t.Helper()
	m := fmt.Sprintf(`{"acKind":"ImageManifest","acVersion":"0.8.11","name":%q,
		"labels":[{"name":"version","value":"1.0"},{"name":"os","value":"linux"},{"name":"arch","value":"amd64"}],
		"app":{"exec":["/bin/app"],"user":"0","group":"0"}`, name)
	if deps != "" {
		m += `,"dependencies":` + deps
	}
	m += "}"
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	add := func(h *tar.Header, body string) {
		h.Size = int64(len(body))
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(body))
	}
	add(&tar.Header{Name: "manifest", Typeflag: tar.TypeReg, Mode: 0o644}, m)
	add(&tar.Header{Name: "rootfs/", Typeflag: tar.TypeDir, Mode: 0o755}, "")
	for p, body := range files {
		add(&tar.Header{Name: "rootfs/" + p, Typeflag: tar.TypeReg, Mode: 0o644}, body)
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

type keys struct {
	signer *openpgp.Entity
	public []byte
}

func newKey(t *testing.T) keys {
	t.Helper()
	e, err := openpgp.NewEntity("signer", "", "signer@example.com", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		t.Fatal(err)
	}
	var pub bytes.Buffer
	if err := e.Serialize(&pub); err != nil {
		t.Fatal(err)
	}
	return keys{e, pub.Bytes()}
}

func (k keys) sign(t *testing.T, b []byte) []byte {
	t.Helper()
	var sig bytes.Buffer
	if err := openpgp.ArmoredDetachSign(&sig, k.signer, bytes.NewReader(b), nil); err != nil {
		t.Fatal(err)
	}
	return sig.Bytes()
}

type fixture struct {
	st    *store.Store
	trust *trust.Store
	dir   string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "images"))
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{st: st, trust: trust.Open(filepath.Join(dir, "trust")), dir: dir}
}

func (f *fixture) write(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(f.dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// nothingStored checks that a refused fetch left no image and no blob.
func (f *fixture) nothingStored(t *testing.T) {
	t.Helper()
	imgs, err := f.st.List()
	if err != nil {
		t.Fatal(err)
	}
	blobs, _ := os.ReadDir(filepath.Join(f.dir, "images", "blobs", "sha256"))
	if len(imgs) != 0 || len(blobs) != 0 {
		t.Fatalf("a refused fetch stored %d images and %d blobs", len(imgs), len(blobs))
	}
}

func TestSignedACIFileIsStoredUnderNameAndVersion(t *testing.T) {
	f := newFixture(t)
	k := newKey(t)
	if _, err := f.trust.Add("example.com", k.public); err != nil {
		t.Fatal(err)
	}
	b := makeACI(t, "example.com/app", map[string]string{"etc/app": "app"}, "")
	p := f.write(t, "app.aci", b)
	f.write(t, "app.aci.asc", k.sign(t, b))
	img, err := Fetch(context.Background(), f.st, p, Options{Trust: f.trust})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(img.Names, ",") != "example.com/app:1.0" || len(img.Layers) != 1 {
		t.Fatalf("stored %+v", img)
	}
	got, err := os.ReadFile(filepath.Join(f.st.LayerPath(img.Layers[0].ChainID), "etc", "app"))
	if err != nil || string(got) != "app" {
		t.Fatalf("extracted etc/app: %q, %v", got, err)
	}
	// The appc manifest is kept as a blob the image's manifest names.
	ann, err := annotations(f.st, img)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := f.st.ReadBlob(digestOf(ann[aci.AnnotationManifest]))
	if err != nil || !strings.Contains(string(raw), `"example.com/app"`) {
		t.Fatalf("appc manifest blob: %q, %v", raw, err)
	}
}

func TestUnsignedACIIsRefusedUnlessInsecureImage(t *testing.T) {
	f := newFixture(t)
	k := newKey(t)
	if _, err := f.trust.Add("example.com", k.public); err != nil {
		t.Fatal(err)
	}
	p := f.write(t, "app.aci", makeACI(t, "example.com/app", nil, ""))
	_, err := Fetch(context.Background(), f.st, p, Options{Trust: f.trust})
	if !errors.Is(err, trust.ErrUnsigned) || !strings.Contains(err.Error(), "example.com/app") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("err = %v, want a one-line ErrUnsigned naming the image", err)
	}
	f.nothingStored(t)
	if _, err := Fetch(context.Background(), f.st, p, Options{Trust: f.trust, InsecureImage: true}); err != nil {
		t.Fatal(err)
	}
}

func TestACISignedForAnotherPrefixIsRefused(t *testing.T) {
	f := newFixture(t)
	k := newKey(t)
	if _, err := f.trust.Add("example.org", k.public); err != nil {
		t.Fatal(err)
	}
	b := makeACI(t, "example.com/app", nil, "")
	p := f.write(t, "app.aci", b)
	f.write(t, "app.aci.asc", k.sign(t, b))
	if _, err := Fetch(context.Background(), f.st, p, Options{Trust: f.trust}); !errors.Is(err, trust.ErrNoKeys) {
		t.Fatalf("err = %v, want ErrNoKeys", err)
	}
	f.nothingStored(t)
}

func TestDependencyLayersLieUnderTheImagesOwnInAppcOrder(t *testing.T) {
	f := newFixture(t)
	opts := Options{InsecureImage: true}
	a := makeACI(t, "example.com/a", map[string]string{"etc/a": "a", "etc/both": "a"}, "")
	b := makeACI(t, "example.com/b", map[string]string{"etc/b": "b", "etc/both": "b"}, "")
	ia, err := Fetch(context.Background(), f.st, f.write(t, "a.aci", a), opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Fetch(context.Background(), f.st, f.write(t, "b.aci", b), opts); err != nil {
		t.Fatal(err)
	}
	annA, _ := annotations(f.st, ia)
	// a by image ID, b by name and labels.
	deps := fmt.Sprintf(`[{"imageName":"example.com/a","imageID":%q},{"imageName":"example.com/b","labels":[{"name":"version","value":"1.0"}]}]`, annA[aci.AnnotationImageID])
	app, err := Fetch(context.Background(), f.st, f.write(t, "app.aci", makeACI(t, "example.com/app", map[string]string{"etc/app": "app"}, deps)), opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(app.Layers) != 3 {
		t.Fatalf("layers %+v, want a's, b's and the app's", app.Layers)
	}
	// Later dependencies are placed down after earlier ones, so b's
	// etc/both wins over a's.
	for i, want := range []string{"etc/a", "etc/b", "etc/app"} {
		if _, err := os.Stat(filepath.Join(f.st.LayerPath(app.Layers[i].ChainID), want)); err != nil {
			t.Errorf("layer %d: %v", i, err)
		}
	}
}

// registry serves ACIs, signatures and appc discovery meta tags.
func registry(t *testing.T, files map[string][]byte) *httptest.Server {
	t.Helper()
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("ac-discovery") == "1" {
			fmt.Fprintf(w, `<html><head><meta name="ac-discovery" content="127.0.0.1 %s/aci/{name}-{version}.{ext}"></head></html>`, srv.URL)
			return
		}
		b, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestDiscoveryOverHTTPFetchesImageAndDependency(t *testing.T) {
	f := newFixture(t)
	k := newKey(t)
	if _, err := f.trust.Add("127.0.0.1", k.public); err != nil {
		t.Fatal(err)
	}
	base := makeACI(t, "127.0.0.1/base", map[string]string{"etc/base": "base"}, "")
	app := makeACI(t, "127.0.0.1/app", map[string]string{"etc/app": "app"}, `[{"imageName":"127.0.0.1/base","labels":[{"name":"version","value":"1.0"}]}]`)
	srv := registry(t, map[string][]byte{
		"/aci/127.0.0.1/app-1.0.aci":      app,
		"/aci/127.0.0.1/app-1.0.aci.asc":  k.sign(t, app),
		"/aci/127.0.0.1/base-1.0.aci":     base,
		"/aci/127.0.0.1/base-1.0.aci.asc": k.sign(t, base),
	})
	ref := strings.TrimPrefix(srv.URL, "http://") + "/app:1.0"

	// Discovery over plain http needs InsecureHTTP.
	if _, err := Fetch(context.Background(), f.st, ref, Options{Trust: f.trust}); err == nil || !strings.Contains(err.Error(), "--insecure-options=http") {
		t.Fatalf("err = %v, want a refusal naming --insecure-options=http", err)
	}
	f.nothingStored(t)

	img, err := Fetch(context.Background(), f.st, ref, Options{Trust: f.trust, InsecureHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(img.Names, ",") != "127.0.0.1/app:1.0" || len(img.Layers) != 2 {
		t.Fatalf("stored %+v", img)
	}
	if _, err := f.st.Resolve("127.0.0.1/base:1.0"); err != nil {
		t.Fatalf("the dependency was not stored: %v", err)
	}
}

func TestDiscoveryServingAnotherImageIsRefused(t *testing.T) {
	f := newFixture(t)
	other := makeACI(t, "127.0.0.1/other", nil, "")
	srv := registry(t, map[string][]byte{"/aci/127.0.0.1/app-1.0.aci": other})
	ref := strings.TrimPrefix(srv.URL, "http://") + "/app:1.0"
	_, err := Fetch(context.Background(), f.st, ref, Options{InsecureHTTP: true, InsecureImage: true})
	if err == nil || !strings.Contains(err.Error(), "served an image named 127.0.0.1/other") {
		t.Fatalf("err = %v", err)
	}
	f.nothingStored(t)
}

func TestACIFromPlainHTTPURLNeedsInsecureHTTP(t *testing.T) {
	f := newFixture(t)
	k := newKey(t)
	if _, err := f.trust.Add("example.com/app", k.public); err != nil {
		t.Fatal(err)
	}
	b := makeACI(t, "example.com/app", nil, "")
	srv := registry(t, map[string][]byte{"/app.aci": b, "/app.aci.asc": k.sign(t, b)})
	if _, err := Fetch(context.Background(), f.st, srv.URL+"/app.aci", Options{Trust: f.trust}); err == nil || !strings.Contains(err.Error(), "plain http is refused") {
		t.Fatalf("err = %v", err)
	}
	if _, err := Fetch(context.Background(), f.st, srv.URL+"/app.aci", Options{Trust: f.trust, InsecureHTTP: true}); err != nil {
		t.Fatal(err)
	}
}

func TestBareNamesAreNotSourcesNorDiscoverable(t *testing.T) {
	for _, s := range []string{"demo", "demo:latest", "localhost/app", "sha256:abc"} {
		if IsSource(s) || Discoverable(s) {
			t.Errorf("%q is taken for an ACI source or appc name", s)
		}
	}
	for s, kind := range map[string]Kind{
		"./app.aci":                 File,
		"/srv/app.aci":              File,
		"file:///srv/app.aci":       File,
		"https://example.com/a.aci": URL,
		"example.com/app:1.0":       Discovery,
		"127.0.0.1:8080/app":        Discovery,
	} {
		r, err := ParseRef(s)
		if err != nil || r.Kind != kind {
			t.Errorf("ParseRef(%q) = %v, %v; want kind %d", s, r.Kind, err, kind)
		}
	}
}

func digestOf(s string) digest.Digest { return digest.Digest(s) }

func TestDependencyWithAnotherImageIDIsRefusedBeforeStoring(t *testing.T) {
	f := newFixture(t)
	base := makeACI(t, "127.0.0.1/base", nil, "")
	wrongID := "sha512-" + strings.Repeat("0", 128)
	app := makeACI(t, "127.0.0.1/app", nil, fmt.Sprintf(`[{"imageName":"127.0.0.1/base","imageID":%q,"labels":[{"name":"version","value":"1.0"}]}]`, wrongID))
	// Both are discovered, the dependency on the app's port.
	srv := registry(t, map[string][]byte{"/aci/127.0.0.1/app-1.0.aci": app, "/aci/127.0.0.1/base-1.0.aci": base})
	ref := strings.TrimPrefix(srv.URL, "http://") + "/app:1.0"
	_, err := Fetch(context.Background(), f.st, ref, Options{InsecureHTTP: true, InsecureImage: true})
	if err == nil || !strings.Contains(err.Error(), "the dependency asks for "+wrongID) {
		t.Fatalf("err = %v", err)
	}
	f.nothingStored(t)
}
