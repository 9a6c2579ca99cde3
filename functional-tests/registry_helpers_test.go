//go:build functional

package functional

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/orbit-pods/orbit/image/source"
)

// requireTool fails the test when a peer it needs is missing: a missing
// install step must not pass for a green run.
func requireTool(t *testing.T, path string) {
	t.Helper()
	if _, err := exec.LookPath(path); err != nil {
		t.Fatalf("%s is not installed (scripts/install-deps installs it)", path)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startRegistry runs Debian's distribution registry on a free loopback
// port, storing into a temp dir, and returns its host:port. It is stopped
// when the test ends.
func startRegistry(t *testing.T) string {
	t.Helper()
	return startRegistryWith(t, "")
}

// startRegistryWith starts a registry with extra configuration (YAML).
func startRegistryWith(t *testing.T, extra string) string {
	t.Helper()
	requireTool(t, "/usr/bin/docker-registry")
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n%s", filepath.Join(dir, "data"), addr, extra)
	cfgFile := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	log, err := os.Create(filepath.Join(dir, "log"))
	if err != nil {
		t.Fatal(err)
	}
	c := exec.Command("/usr/bin/docker-registry", "serve", cfgFile)
	c.Stdout, c.Stderr = log, log
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.Process.Kill()
		_ = c.Wait()
		log.Close()
	})
	waitFor(t, "the registry to answer on "+addr, 30*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized
	})
	return addr
}

// skopeoCopy copies an image with skopeo, to or from a plain-HTTP registry.
func skopeoCopy(t *testing.T, src, dst string, extra ...string) {
	t.Helper()
	requireTool(t, "skopeo")
	args := append([]string{"--insecure-policy", "copy", "--src-tls-verify=false", "--dest-tls-verify=false"}, extra...)
	out, err := exec.Command("skopeo", append(args, src, dst)...).CombinedOutput()
	if err != nil {
		t.Fatalf("skopeo copy %s %s: %v\n%s", src, dst, err, out)
	}
}

// pushDemo puts the demo image in the registry as NAME:TAG.
func pushDemo(t *testing.T, addr, ref string) {
	t.Helper()
	skopeoCopy(t, "oci-archive:"+filepath.Join(build, "demo.oci.tar"), "docker://"+addr+"/"+ref)
}

// demoImage reads the demo image as the tests' own reference.
func demoImage(t *testing.T) v1.Image {
	t.Helper()
	o, err := source.Open(context.Background(), source.Source{Transport: source.OCIArchive, Path: filepath.Join(build, "demo.oci.tar")}, source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	return o.Image
}

// demoLayerDigest is the digest of the demo image's (only) layer blob.
func demoLayerDigest(t *testing.T) string {
	t.Helper()
	ls, err := demoImage(t).Layers()
	if err != nil || len(ls) == 0 {
		t.Fatalf("demo image layers: %v", err)
	}
	d, err := ls[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// proxy forwards to the registry at upstream and lets blob lets a test
// change what the blob with digest target looks like on the way.
func proxy(t *testing.T, upstream, target string, blob func(w http.ResponseWriter, r *http.Request, body []byte)) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := http.NewRequestWithContext(r.Context(), r.Method, "http://"+upstream+r.URL.RequestURI(), r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		req.Header = r.Header.Clone()
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/blobs/"+target) && resp.StatusCode == http.StatusOK {
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			blob(w, r, body)
			return
		}
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// storeIsEmpty fails the test unless the store holds no image, blob, layer
// or temporary item.
func (e *env) storeIsEmpty(t *testing.T) {
	t.Helper()
	var imgs []json.RawMessage
	out := e.mustOrbit("image", "list", "--format=json")
	if err := json.Unmarshal([]byte(out), &imgs); err != nil {
		t.Fatalf("image list --format=json: %v: %s", err, out)
	}
	if len(imgs) != 0 {
		t.Errorf("store holds %d images, want none:\n%s", len(imgs), out)
	}
	for _, d := range []string{"blobs/sha256", "layers", "tmp"} {
		ents, _ := os.ReadDir(filepath.Join(e.data, "images", d))
		if len(ents) != 0 {
			t.Errorf("images/%s holds %d entries, want none", d, len(ents))
		}
	}
}

// oneLine checks that a failed command said one line naming what and why.
func oneLine(t *testing.T, r result, what string, why ...string) {
	t.Helper()
	if r.code == 0 {
		t.Fatalf("succeeded, want an error; stdout %q", r.stdout)
	}
	msg := strings.TrimSuffix(r.stderr, "\n")
	if strings.Contains(msg, "\n") || !strings.Contains(msg, what) {
		t.Errorf("error %q: want one line naming %s", r.stderr, what)
	}
	for _, w := range why {
		if bytes.Contains([]byte(msg), []byte(w)) {
			return
		}
	}
	t.Errorf("error %q: want the cause, one of %q", r.stderr, why)
}
