//go:build functional

package functional

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/orbit-pods/orbit/image/archive"
)

func TestFetchByTagAndByDigestFromRegistry(t *testing.T) {
	addr := startRegistry(t)
	pushDemo(t, addr, "demo:1")
	e := newEnv(t)
	id := strings.TrimSpace(e.mustOrbit("--insecure-options=http", "fetch", "docker://"+addr+"/demo:1"))
	want, _ := demoImage(t).Digest()
	if id != want.String() {
		t.Fatalf("fetch printed %q, want the demo image's manifest digest %s", id, want)
	}
	if out := e.mustOrbit("image", "list"); !strings.Contains(out, addr+"/demo:1") {
		t.Fatalf("image list does not name the image %s/demo:1:\n%s", addr, out)
	}
	byDigest := strings.TrimSpace(e.mustOrbit("--insecure-options=http", "fetch", "docker://"+addr+"/demo@"+id))
	if byDigest != id {
		t.Fatalf("fetch by digest gave %s, by tag %s", byDigest, id)
	}
	r := e.orbit("run", addr+"/demo:1", "--exec=/bin/echo", "--", "hi")
	if r.code != 0 || r.stdout != "hi\n" {
		t.Fatalf("run: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

func TestRunFetchesFromRegistryOnDemand(t *testing.T) {
	addr := startRegistry(t)
	pushDemo(t, addr, "demo:1")
	e := newEnv(t)
	r := e.orbit("--insecure-options=http", "run", "docker://"+addr+"/demo:1", "--exec=/bin/echo", "--", "hi")
	if r.code != 0 || r.stdout != "hi\n" {
		t.Fatalf("run: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

func TestFetchOverPlainHTTPNeedsInsecureOption(t *testing.T) {
	addr := startRegistry(t)
	pushDemo(t, addr, "demo:1")
	e := newEnv(t)
	oneLine(t, e.orbit("fetch", "docker://"+addr+"/demo:1"), "docker://"+addr+"/demo:1", "--insecure-options=http")
	e.storeIsEmpty(t)
}

func TestFetchFromMultiArchIndexPicksLinuxAmd64(t *testing.T) {
	addr := startRegistry(t)
	// An arm64 image listed first, so taking the first would be wrong.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "arch"), []byte("arm64\n"), 0o644)
	arm, err := archive.ImageFromDirs([]string{dir}, ocispec.ImageConfig{Cmd: []string{"/arch"}})
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := arm.ConfigFile()
	cf.Architecture = "arm64"
	if arm, err = mutate.ConfigFile(arm, cf); err != nil {
		t.Fatal(err)
	}
	amd := demoImage(t)
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
	)
	ref, err := name.ParseReference(addr + "/multi:1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatalf("push index: %v", err)
	}
	e := newEnv(t)
	id := strings.TrimSpace(e.mustOrbit("--insecure-options=http", "fetch", "docker://"+addr+"/multi:1"))
	want, _ := amd.Digest()
	if id != want.String() {
		t.Fatalf("fetch from index gave %s, want the linux/amd64 image %s", id, want)
	}
	r := e.orbit("run", "multi:1", "--exec=/bin/echo", "--", "hi")
	if r.code != 0 || r.stdout != "hi\n" {
		t.Fatalf("run: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

func TestRegistryServingWrongBlobIsRefused(t *testing.T) {
	addr := startRegistry(t)
	pushDemo(t, addr, "demo:1")
	liar := proxy(t, addr, demoLayerDigest(t), func(w http.ResponseWriter, r *http.Request, body []byte) {
		body[len(body)/2] ^= 0xff
		w.WriteHeader(http.StatusOK)
		w.Write(body)
	})
	e := newEnv(t)
	oneLine(t, e.orbit("--insecure-options=http", "fetch", "docker://"+liar+"/demo:1"), "docker://"+liar+"/demo:1", "digest mismatch", "hashes to")
	e.storeIsEmpty(t)
}

func TestConcurrentFetchesOfOneImageBothSucceedAndStoreItOnce(t *testing.T) {
	addr := startRegistry(t)
	pushDemo(t, addr, "demo:1")
	e := newEnv(t)
	a, aout := e.start("--insecure-options=http", "fetch", "docker://"+addr+"/demo:1")
	b, bout := e.start("--insecure-options=http", "fetch", "docker://"+addr+"/demo:1")
	errA, errB := a.Wait(), b.Wait()
	if errA != nil || errB != nil {
		t.Fatalf("fetches: %v, %v\n%s\n%s", errA, errB, output(aout), output(bout))
	}
	if output(aout) != output(bout) {
		t.Fatalf("fetches gave %q and %q", output(aout), output(bout))
	}
	var imgs []struct{ ID string }
	json.Unmarshal([]byte(e.mustOrbit("image", "list", "--format=json")), &imgs)
	if len(imgs) != 1 {
		t.Fatalf("%d images stored, want 1", len(imgs))
	}
	for d, want := range map[string]int{"layers": 1, "blobs/sha256": 3, "tmp": 0} {
		if ents, _ := os.ReadDir(filepath.Join(e.data, "images", d)); len(ents) != want {
			t.Errorf("images/%s holds %d entries, want %d", d, len(ents), want)
		}
	}
}

// A fetch killed while its layer is half downloaded and half unpacked
// leaves no blob, layer or image visible; gc sweeps its litter, and the
// next fetch works.
func TestFetchKilledMidLayerLeavesNothingHalfVisible(t *testing.T) {
	addr := startRegistry(t)
	pushDemo(t, addr, "demo:1")
	release := make(chan struct{})
	slow := proxy(t, addr, demoLayerDigest(t), func(w http.ResponseWriter, r *http.Request, body []byte) {
		w.WriteHeader(http.StatusOK)
		w.Write(body[:len(body)/2])
		w.(http.Flusher).Flush()
		select { // the rest never comes while the test looks
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) }) // before the proxy closes
	e := newEnv(t)
	c, out := e.start("--insecure-options=http", "fetch", "docker://"+slow+"/demo:1")
	tmp := filepath.Join(e.data, "images", "tmp")
	waitFor(t, "the layer to be half unpacked", 30*time.Second, func() bool {
		dirs, _ := filepath.Glob(filepath.Join(tmp, "layer-*", "bin"))
		return len(dirs) > 0
	})
	if err := c.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	c.Wait()
	var imgs []json.RawMessage
	json.Unmarshal([]byte(e.mustOrbit("image", "list", "--format=json")), &imgs)
	if len(imgs) != 0 {
		t.Fatalf("killed fetch left %d images visible (output %q)", len(imgs), output(out))
	}
	if _, err := os.Stat(filepath.Join(e.data, "images", "blobs", "sha256", strings.TrimPrefix(demoLayerDigest(t), "sha256:"))); !os.IsNotExist(err) {
		t.Errorf("killed fetch left the layer blob visible: %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(e.data, "images", "layers")); len(ents) != 0 {
		t.Errorf("killed fetch left %d layers visible", len(ents))
	}
	e.mustOrbit("image", "gc", "--grace-period=0")
	if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
		t.Errorf("image gc left %d items in images/tmp", len(ents))
	}
	e.mustOrbit("--insecure-options=http", "fetch", "docker://"+addr+"/demo:1")
	r := e.orbit("run", addr+"/demo:1", "--exec=/bin/echo", "--", "hi")
	if r.code != 0 || r.stdout != "hi\n" {
		t.Fatalf("run after refetch: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}
