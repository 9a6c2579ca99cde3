package stage0

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orbit-pods/orbit/image/store"
)

// storeACI fetches a minimal unsigned ACI named name (version 1.0) into st.
func storeACI(t *testing.T, st *store.Store, name string) *store.Image {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	m := fmt.Sprintf(`{"acKind":"ImageManifest","acVersion":"0.8.11","name":%q,"labels":[{"name":"version","value":"1.0"}]}`, name)
	tw.WriteHeader(&tar.Header{Name: "manifest", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(m))})
	tw.Write([]byte(m))
	tw.WriteHeader(&tar.Header{Name: "rootfs/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.Close()
	p := filepath.Join(t.TempDir(), "x.aci")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	img, err := Fetch(WithFetchOptions(context.Background(), FetchOptions{InsecureImage: true}), st, p)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestStoredNamesResolveWithoutDiscovery(t *testing.T) {
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	app := storeACI(t, st, "example.com/app")
	local := storeACI(t, st, "127.0.0.1/app")
	for ref, want := range map[string]*store.Image{
		"example.com/app:1.0": app,
		"127.0.0.1/app:1.0":   local,
		// The port is for discovery; the stored name has none.
		"127.0.0.1:8080/app:1.0": local,
	} {
		img, err := ResolveImage(context.Background(), st, ref)
		if err != nil || img.ID != want.ID {
			t.Errorf("ResolveImage(%q) = %v, %v; want %s", ref, img, err, want.ID)
		}
	}
	// A bare name that is not stored is not looked for on the network.
	_, err = ResolveImage(context.Background(), st, "demo")
	if err == nil || !strings.Contains(err.Error(), "not in the store") || strings.Contains(err.Error(), "discover") {
		t.Fatalf("ResolveImage(demo) = %v", err)
	}
}

func TestUnsignedACIIsRefusedWithoutInsecureImage(t *testing.T) {
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	m := `{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/app"}`
	tw.WriteHeader(&tar.Header{Name: "manifest", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(m))})
	tw.Write([]byte(m))
	tw.Close()
	p := filepath.Join(t.TempDir(), "x.aci")
	os.WriteFile(p, buf.Bytes(), 0o644)
	e := &Env{DataDir: t.TempDir()}
	ctx := WithFetchOptions(context.Background(), FetchOptions{Trust: e.Trust()})
	if _, err := Fetch(ctx, st, p); err == nil || !strings.Contains(err.Error(), "not signed") {
		t.Fatalf("Fetch = %v, want a refusal of the unsigned image", err)
	}
}
