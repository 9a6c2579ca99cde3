package metadata

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
)

const (
	uuidA = "6a6e3a3b-0b2f-4c1c-9a4e-1f2d3c4b5a69"
	uuidB = "0f0e0d0c-0b0a-4908-8706-050403020100"
)

func registration(t *testing.T, uuid, ip string) *Registration {
	t.Helper()
	id, _ := types.NewHash("sha512-0123456789abcdef")
	pm := schema.BlankPodManifest()
	pm.Annotations = types.Annotations{{Name: "role", Value: "test"}}
	name := types.ACIdentifier("example.com/app")
	pm.Apps = schema.AppList{{
		Name:        "app",
		Image:       schema.RuntimeImage{Name: &name, ID: *id},
		Annotations: types.Annotations{{Name: "lorem", Value: "pod's"}, {Name: "extra", Value: "x"}},
	}}
	pmb, err := json.Marshal(pm)
	if err != nil {
		t.Fatal(err)
	}
	im := schema.BlankImageManifest()
	im.Name = name
	im.Annotations = types.Annotations{{Name: "lorem", Value: "ipsum"}, {Name: "homepage", Value: "https://h.example"}}
	imb, err := json.Marshal(im)
	if err != nil {
		t.Fatal(err)
	}
	r := &Registration{UUID: uuid, Manifest: pmb, Apps: map[string]App{"app": {ImageManifest: imb, ImageID: id.String()}}}
	if ip != "" {
		r.IPs = []string{ip}
	}
	return r
}

// get asks the metadata API as if from addr.
func get(t *testing.T, h http.Handler, from, method, path string, form url.Values) (int, string, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req := httptest.NewRequest(method, path, body)
	req.RemoteAddr = from
	req.Header.Set("Metadata-Flavor", "AppContainer")
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w.Code, w.Header().Get("Content-Type"), w.Body.String()
}

func TestPodReadsItsOwnMetadataAndNoOtherPods(t *testing.T) {
	s, err := NewServer(DefaultPort)
	if err != nil {
		t.Fatal(err)
	}
	ta, err := s.Register(registration(t, uuidA, "10.0.0.2"))
	if err != nil {
		t.Fatal(err)
	}
	tb, err := s.Register(registration(t, uuidB, "10.0.0.3"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ta) != 64 || ta == tb || strings.Contains(ta, uuidA) {
		t.Fatalf("tokens %q %q", ta, tb)
	}
	h := s.MetadataHandler()
	base := "/" + ta + "/acMetadata/v1"
	code, ct, body := get(t, h, "10.0.0.2:5555", "GET", base+"/pod/uuid", nil)
	if code != 200 || ct != textType || body != uuidA {
		t.Errorf("uuid: %d %q %q", code, ct, body)
	}
	code, ct, body = get(t, h, "10.0.0.2:5555", "GET", base+"/pod/annotations", nil)
	if code != 200 || ct != jsonType || body != `[{"name":"role","value":"test"}]` {
		t.Errorf("pod annotations: %d %q %q", code, ct, body)
	}
	// The image's annotations, the pod manifest's for the app over them.
	_, _, body = get(t, h, "10.0.0.2:5555", "GET", base+"/apps/app/annotations", nil)
	if body != `[{"name":"lorem","value":"pod's"},{"name":"homepage","value":"https://h.example"},{"name":"extra","value":"x"}]` {
		t.Errorf("app annotations: %s", body)
	}
	if code, _, body = get(t, h, "10.0.0.2:5555", "GET", base+"/apps/app/image/id", nil); code != 200 || body != "sha512-0123456789abcdef" {
		t.Errorf("image id: %d %q", code, body)
	}
	if code, _, _ = get(t, h, "10.0.0.2:5555", "GET", base+"/apps/nope/image/id", nil); code != 404 {
		t.Errorf("unknown app: %d", code)
	}
	// Pod B (10.0.0.3) with A's token, and anyone with a made-up token.
	if code, _, body = get(t, h, "10.0.0.3:5555", "GET", base+"/pod/uuid", nil); code != 403 || strings.Contains(body, uuidA) {
		t.Errorf("pod B with pod A's token: %d %q", code, body)
	}
	if code, _, _ = get(t, h, "10.0.0.2:5555", "GET", "/"+strings.Repeat("0", 64)+"/acMetadata/v1/pod/uuid", nil); code != 403 {
		t.Errorf("made-up token: %d", code)
	}
	// No Metadata-Flavor header: refused.
	req := httptest.NewRequest("GET", base+"/pod/uuid", nil)
	req.RemoteAddr = "10.0.0.2:1"
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != 400 {
		t.Errorf("without the header: %d", w.Code)
	}
	// Unregistered: the token is void.
	if !s.Unregister(uuidA) {
		t.Error("unregister: not registered")
	}
	if code, _, _ = get(t, h, "10.0.0.2:5555", "GET", base+"/pod/uuid", nil); code != 403 {
		t.Errorf("after unregister: %d", code)
	}
}

func TestHMACSignAndVerify(t *testing.T) {
	s, _ := NewServer(DefaultPort)
	ta, _ := s.Register(registration(t, uuidA, ""))
	tb, _ := s.Register(registration(t, uuidB, ""))
	h := s.MetadataHandler()
	code, ct, sig := get(t, h, "127.0.0.1:1", "POST", "/"+ta+"/acMetadata/v1/pod/hmac/sign", url.Values{"content": {"hello"}})
	if code != 200 || ct != textType || sig == "" {
		t.Fatalf("sign: %d %q %q", code, ct, sig)
	}
	verify := func(uuid, content, sig string) int {
		code, _, _ := get(t, h, "127.0.0.1:1", "POST", "/"+tb+"/acMetadata/v1/pod/hmac/verify",
			url.Values{"content": {content}, "uuid": {uuid}, "signature": {sig}})
		return code
	}
	if c := verify(uuidA, "hello", sig); c != 200 {
		t.Errorf("pod B verifying A's signature: %d", c)
	}
	if c := verify(uuidB, "hello", sig); c != 403 {
		t.Errorf("signature claimed for another pod: %d", c)
	}
	if c := verify(uuidA, "hellO", sig); c != 403 {
		t.Errorf("other content: %d", c)
	}
}

func TestRegistrationOverTheSocket(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "mds.sock")
	c := NewClient(sock)
	if err := c.Ping(context.Background()); err == nil || !strings.Contains(err.Error(), "no metadata service is running") {
		t.Fatalf("ping with no service: %v", err)
	}
	ls, err := Listen(sock, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, _ := NewServer(0)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ls) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	r, err := c.Register(ctx, registration(t, uuidA, "127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Port != ls.Metadata.Addr().(*net.TCPAddr).Port {
		t.Errorf("port %d, listening on %v", r.Port, ls.Metadata.Addr())
	}
	req, _ := http.NewRequest("GET", "http://"+ls.Metadata.Addr().String()+"/"+r.Token+"/acMetadata/v1/pod/uuid", nil)
	req.Header.Set("Metadata-Flavor", "AppContainer")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != uuidA {
		t.Errorf("over TCP: %s", b)
	}
	bad := registration(t, uuidB, "")
	bad.Manifest = []byte(`{"acKind":"Nope"}`)
	if _, err := c.Register(ctx, bad); err == nil || !strings.Contains(err.Error(), "appc pod manifest") {
		t.Errorf("bad manifest: %v", err)
	}
	if err := c.Unregister(ctx, uuidA); err != nil {
		t.Fatal(err)
	}
	if err := c.Unregister(ctx, uuidA); err == nil {
		t.Error("unregistered twice")
	}
	if _, err := Listen(sock, "127.0.0.1:0"); err == nil || !strings.Contains(err.Error(), "already listens") {
		t.Errorf("a second service on the same socket: %v", err)
	}
}
