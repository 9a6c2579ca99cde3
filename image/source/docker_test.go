package source

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
)

func TestParseDockerSource(t *testing.T) {
	src, ok, err := Parse("docker://127.0.0.1:5000/app/web:1.2")
	if err != nil || !ok || src.Transport != Docker || src.Path != "127.0.0.1:5000/app/web:1.2" {
		t.Fatalf("Parse = %+v, %v, %v", src, ok, err)
	}
	if src.String() != "docker://127.0.0.1:5000/app/web:1.2" {
		t.Fatalf("String() = %q", src)
	}
	if _, ok, err := Parse("docker://UPPER/Case"); !ok || err == nil {
		t.Fatalf("bad reference: ok %v, err %v", ok, err)
	}
}

func TestAuthFileGivesRegistryCredentials(t *testing.T) {
	f := filepath.Join(t.TempDir(), "config.json")
	// "user:secret" in base64.
	os.WriteFile(f, []byte(`{"auths":{"registry.example:5000":{"auth":"dXNlcjpzZWNyZXQ="}}}`), 0o600)
	keys, err := authKeychain(f)
	if err != nil {
		t.Fatal(err)
	}
	repo, _ := name.NewRepository("registry.example:5000/app")
	a, err := keys.Resolve(repo)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := a.Authorization()
	if err != nil || cfg.Username != "user" || cfg.Password != "secret" {
		t.Fatalf("credentials %+v, %v", cfg, err)
	}
	if _, err := authKeychain(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Fatal("a missing --auth-file was not an error")
	}
}

func TestPlainHTTPRegistryRefusedWithoutInsecureOption(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("request reached the plain-HTTP registry: %s", r.URL)
	}))
	defer srv.Close()
	t.Setenv("REGISTRY_AUTH_FILE", filepath.Join(t.TempDir(), "none.json"))
	src, _, _ := Parse("docker://" + strings.TrimPrefix(srv.URL, "http://") + "/app:1")
	_, err := Open(context.Background(), src, Options{})
	if !errors.Is(err, ErrPlainHTTP) {
		t.Fatalf("Open = %v, want ErrPlainHTTP", err)
	}
}
