//go:build functional

package functional

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// aciFile is one entry of an ACI's rootfs.
type aciFile struct {
	hdr  tar.Header
	body []byte
}

// demoRootfs reads the busybox rootfs out of the build's demo image.
func demoRootfs(t *testing.T) []aciFile {
	t.Helper()
	dir := t.TempDir()
	f, err := os.Open(filepath.Join(build, "demo.oci.tar"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.Clean("/"+h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			os.MkdirAll(p, 0o755)
		case tar.TypeReg:
			os.MkdirAll(filepath.Dir(p), 0o755)
			b, _ := io.ReadAll(tr)
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var out []aciFile
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		lr := tar.NewReader(rc)
		for {
			h, err := lr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(lr)
			out = append(out, aciFile{*h, b})
		}
		rc.Close()
	}
	return out
}

// buildACI writes an ACI (gzip) of the rootfs entries with the manifest
// and returns its path and its appc image ID.
func buildACI(t *testing.T, dir, file, manifest string, rootfs []aciFile) (path, id string) {
	t.Helper()
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	put := func(h tar.Header, body []byte) {
		h.Size = int64(len(body))
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		tw.Write(body)
	}
	put(tar.Header{Name: "manifest", Typeflag: tar.TypeReg, Mode: 0o644}, []byte(manifest))
	put(tar.Header{Name: "rootfs/", Typeflag: tar.TypeDir, Mode: 0o755}, nil)
	for _, f := range rootfs {
		h := f.hdr
		h.Name = "rootfs/" + strings.TrimPrefix(h.Name, "./")
		if h.Typeflag == tar.TypeLink {
			h.Linkname = "rootfs/" + strings.TrimPrefix(h.Linkname, "./")
		}
		if h.Name == "rootfs/" {
			continue
		}
		put(h, f.body)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	sum := sha512.Sum512(raw.Bytes())
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(raw.Bytes())
	zw.Close()
	path = filepath.Join(dir, file)
	if err := os.WriteFile(path, z.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, "sha512-" + hex.EncodeToString(sum[:])
}

func manifest(name, exec, deps string) string {
	m := fmt.Sprintf(`{"acKind":"ImageManifest","acVersion":"0.8.11","name":%q,
"labels":[{"name":"version","value":"1.0"},{"name":"os","value":"linux"},{"name":"arch","value":"amd64"}],
"app":{"exec":%s,"user":"0","group":"0","environment":[{"name":"PATH","value":"/bin"}]}`, name, exec)
	if deps != "" {
		m += `,"dependencies":` + deps
	}
	return m + "}"
}

// signer is an OpenPGP key made for one test.
type signer struct {
	e       *openpgp.Entity
	keyFile string
}

func newSigner(t *testing.T, dir string) signer {
	t.Helper()
	e, err := openpgp.NewEntity("Orbit test", "", "test@example.com", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, _ := armor.Encode(&buf, openpgp.PublicKeyType, nil)
	if err := e.Serialize(w); err != nil {
		t.Fatal(err)
	}
	w.Close()
	p := filepath.Join(dir, "key.asc")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return signer{e, p}
}

// sign writes FILE.asc beside file.
func (s signer) sign(t *testing.T, file string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var sig bytes.Buffer
	if err := openpgp.ArmoredDetachSign(&sig, s.e, bytes.NewReader(b), nil); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file+".asc", sig.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// appACIs builds a busybox base ACI and an app ACI depending on it (deps
// is the app's dependency list, given the base's image ID), both signed.
func appACIs(t *testing.T, dir, prefix string, s signer, deps func(baseID string) string) (base, app string) {
	t.Helper()
	base, baseID := buildACI(t, dir, "base.aci", manifest(prefix+"/busybox", `["/bin/sh"]`, ""), demoRootfs(t))
	msg := []aciFile{
		{tar.Header{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755}, nil},
		{tar.Header{Name: "etc/hello", Typeflag: tar.TypeReg, Mode: 0o644}, []byte("hello from the app layer\n")},
	}
	app, _ = buildACI(t, dir, "app.aci", manifest(prefix+"/hello", `["/bin/cat","/etc/hello"]`, deps(baseID)), msg)
	s.sign(t, base)
	s.sign(t, app)
	return base, app
}

func byImageID(name string) func(string) string {
	return func(id string) string {
		return fmt.Sprintf(`[{"imageName":%q,"imageID":%q}]`, name, id)
	}
}

// checkHelloRuns runs the app image: its own layer and its dependency's
// busybox are both there.
func checkHelloRuns(e *env, name string) {
	e.t.Helper()
	if r := e.orbit("run", name, "--exec=/bin/echo", "--", "hi"); r.code != 0 || r.stdout != "hi\n" {
		e.t.Fatalf("run %s --exec=/bin/echo -- hi: exit %d, stdout %q, stderr %q", name, r.code, r.stdout, r.stderr)
	}
	if r := e.orbit("run", name); r.code != 0 || r.stdout != "hello from the app layer\n" {
		e.t.Fatalf("run %s: exit %d, stdout %q, stderr %q", name, r.code, r.stdout, r.stderr)
	}
}

func TestSignedACIWithDependencyFromFileRuns(t *testing.T) {
	e := newEnv(t)
	s := newSigner(t, e.root)
	base, app := appACIs(t, e.root, "example.com", s, byImageID("example.com/busybox"))
	out := e.mustOrbit("trust", "--prefix=example.com", s.keyFile)
	if !strings.Contains(out, filepath.Join(e.data, "trust", "prefix.d", "example.com")) {
		t.Fatalf("trust printed %q", out)
	}
	if out := e.mustOrbit("trust", "--list"); !strings.Contains(out, "example.com") {
		t.Fatalf("trust --list printed %q", out)
	}
	e.mustOrbit("fetch", base)
	e.mustOrbit("fetch", "file://"+app)
	list := e.mustOrbit("image", "list")
	for _, n := range []string{"example.com/busybox:1.0", "example.com/hello:1.0"} {
		if !strings.Contains(list, n) {
			t.Fatalf("image list lacks %s:\n%s", n, list)
		}
	}
	checkHelloRuns(e, "example.com/hello:1.0")
}

func TestUnsignedACIIsRefused(t *testing.T) {
	e := newEnv(t)
	s := newSigner(t, e.root)
	base, _ := buildACI(t, e.root, "base.aci", manifest("example.com/busybox", `["/bin/sh"]`, ""), demoRootfs(t))
	e.mustOrbit("trust", "--prefix=example.com", s.keyFile)
	r := e.orbit("fetch", base)
	if r.code == 0 || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "example.com/busybox") || !strings.Contains(r.stderr, "not signed") {
		t.Fatalf("unsigned fetch: exit %d, stderr %q; want a one-line refusal naming the image and the cause", r.code, r.stderr)
	}
	if list := e.mustOrbit("image", "list", "--format=json"); strings.Contains(list, "busybox") {
		t.Fatalf("a refused image was stored: %s", list)
	}
	// A signature by a key not trusted for the name is refused too.
	other := newSigner(t, t.TempDir())
	other.sign(t, base)
	if r := e.orbit("fetch", base); r.code == 0 || !strings.Contains(r.stderr, "not trusted") {
		t.Fatalf("fetch signed by an untrusted key: exit %d, stderr %q", r.code, r.stderr)
	}
	os.Remove(base + ".asc")
	// orbit run fetches an ACI file it is given, with the same checks.
	if r := e.orbit("run", base, "--exec=/bin/echo", "--", "hi"); r.code != 125 || !strings.Contains(r.stderr, "not signed") {
		t.Fatalf("run of an unsigned ACI file: exit %d, stderr %q; want 125 and a refusal", r.code, r.stderr)
	}
	if r := e.orbit("--insecure-options=image", "run", base, "--exec=/bin/echo", "--", "hi"); r.code != 0 || r.stdout != "hi\n" {
		t.Fatalf("run --insecure-options=image FILE: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	e.mustOrbit("--insecure-options=image", "fetch", base)
	if r := e.orbit("run", "example.com/busybox:1.0", "--exec=/bin/echo", "--", "hi"); r.code != 0 || r.stdout != "hi\n" {
		t.Fatalf("run: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

// serve runs an http server on 127.0.0.1 for the test's files and appc
// discovery meta tags (the ACI template is URL/aci/{name}-{version}.{ext}).
func serve(t *testing.T, files map[string]string) *httptest.Server {
	t.Helper()
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("ac-discovery") == "1" {
			fmt.Fprintf(w, `<!DOCTYPE html><html><head><meta name="ac-discovery" content="127.0.0.1 %s/aci/{name}-{version}.{ext}"></head></html>`, srv.URL)
			return
		}
		p, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		http.ServeFile(w, r, p)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestSignedACIFromHTTPNeedsInsecureHTTP(t *testing.T) {
	e := newEnv(t)
	s := newSigner(t, e.root)
	base, app := appACIs(t, e.root, "example.com", s, byImageID("example.com/busybox"))
	srv := serve(t, map[string]string{
		"/base.aci": base, "/base.aci.asc": base + ".asc",
		"/app.aci": app, "/app.aci.asc": app + ".asc",
	})
	e.mustOrbit("trust", "--prefix=example.com", s.keyFile)
	if r := e.orbit("fetch", srv.URL+"/base.aci"); r.code == 0 || !strings.Contains(r.stderr, "--insecure-options=http") {
		t.Fatalf("plain http fetch: exit %d, stderr %q; want a refusal", r.code, r.stderr)
	}
	e.mustOrbit("--insecure-options=http", "fetch", srv.URL+"/base.aci")
	e.mustOrbit("--insecure-options=http", "fetch", srv.URL+"/app.aci")
	checkHelloRuns(e, "example.com/hello:1.0")
}

func TestACIDiscoveryFetchesImageAndDependency(t *testing.T) {
	e := newEnv(t)
	s := newSigner(t, e.root)
	// The app names its dependency by name and version only, so the
	// dependency is found by discovery too.
	byName := func(string) string {
		return `[{"imageName":"127.0.0.1/busybox","labels":[{"name":"version","value":"1.0"}]}]`
	}
	base, app := appACIs(t, e.root, "127.0.0.1", s, byName)
	srv := serve(t, map[string]string{
		"/aci/127.0.0.1/busybox-1.0.aci": base, "/aci/127.0.0.1/busybox-1.0.aci.asc": base + ".asc",
		"/aci/127.0.0.1/hello-1.0.aci": app, "/aci/127.0.0.1/hello-1.0.aci.asc": app + ".asc",
	})
	e.mustOrbit("trust", "--prefix=127.0.0.1", s.keyFile)
	name := strings.TrimPrefix(srv.URL, "http://") + "/hello:1.0"
	if r := e.orbit("fetch", name); r.code == 0 {
		t.Fatalf("discovery over plain http without --insecure-options=http succeeded: %q", r.stdout)
	}
	e.mustOrbit("--insecure-options=http", "fetch", name)
	checkHelloRuns(e, "127.0.0.1/hello:1.0")
}
