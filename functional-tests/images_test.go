//go:build functional

package functional

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func (e *env) runsEcho(img string) {
	e.t.Helper()
	r := e.orbit("run", img, "--exec=/bin/echo", "--", "hi")
	if r.code != 0 || r.stdout != "hi\n" {
		e.t.Fatalf("run %s: exit %d, stdout %q, stderr %q", img, r.code, r.stdout, r.stderr)
	}
}

func mustRun(t *testing.T, name string, args ...string) {
	t.Helper()
	requireTool(t, name)
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

func TestImagesWrittenBySkopeoImportAndRun(t *testing.T) {
	demo := "oci-archive:" + filepath.Join(build, "demo.oci.tar")
	dir := t.TempDir()
	skopeoCopy(t, demo, "oci:"+filepath.Join(dir, "layout")+":skolayout")
	skopeoCopy(t, demo, "oci-archive:"+filepath.Join(dir, "a.tar")+":skoarchive")
	skopeoCopy(t, demo, "docker-archive:"+filepath.Join(dir, "d.tar")+":example.com/skodocker:1")
	e := newEnv(t)
	e.mustOrbit("fetch", "oci:"+filepath.Join(dir, "layout")+":skolayout",
		"oci-archive:"+filepath.Join(dir, "a.tar"),
		"docker-archive:"+filepath.Join(dir, "d.tar"))
	for _, img := range []string{"skolayout", "skoarchive", "example.com/skodocker:1"} {
		e.runsEcho(img)
	}
}

func TestImageBuiltByUmociImportsAndRuns(t *testing.T) {
	requireTool(t, "umoci")
	e := newEnv(t)
	e.fetchDemo()
	dir := t.TempDir()
	layout, bundle := filepath.Join(dir, "layout"), filepath.Join(dir, "bundle")
	mustRun(t, "umoci", "init", "--layout", layout)
	mustRun(t, "umoci", "new", "--image", layout+":umo")
	mustRun(t, "umoci", "unpack", "--image", layout+":umo", bundle)
	e.mustOrbit("image", "render", "demo", filepath.Join(bundle, "rootfs"))
	mustRun(t, "umoci", "repack", "--image", layout+":umo", bundle)
	mustRun(t, "umoci", "config", "--image", layout+":umo", "--config.cmd=/bin/true")
	e.mustOrbit("fetch", "oci:"+layout+":umo")
	e.runsEcho("umo")
}

func TestExportedArchiveIsReadBySkopeoAndUmoci(t *testing.T) {
	requireTool(t, "skopeo")
	requireTool(t, "umoci")
	e := newEnv(t)
	e.fetchDemo()
	id := strings.TrimSpace(e.mustOrbit("image", "list", "--format=json"))
	var imgs []struct{ ID string }
	json.Unmarshal([]byte(id), &imgs)
	dir := t.TempDir()
	out := filepath.Join(dir, "out.tar")
	e.mustOrbit("image", "export", "demo", out)
	b, err := exec.Command("skopeo", "inspect", "oci-archive:"+out).Output()
	if err != nil {
		t.Fatalf("skopeo inspect: %v", err)
	}
	var insp struct{ Digest string }
	json.Unmarshal(b, &insp)
	if len(imgs) != 1 || insp.Digest != imgs[0].ID {
		t.Fatalf("skopeo sees digest %q, orbit stored %+v", insp.Digest, imgs)
	}
	layout := filepath.Join(dir, "layout")
	os.Mkdir(layout, 0o755)
	mustRun(t, "tar", "-xf", out, "-C", layout)
	mustRun(t, "umoci", "unpack", "--image", layout+":latest", filepath.Join(dir, "bundle"))
	if _, err := os.Stat(filepath.Join(dir, "bundle", "rootfs", "bin", "busybox")); err != nil {
		t.Fatalf("umoci unpacked no busybox: %v", err)
	}
	// And back: the archive imports to the same image.
	e2 := newEnv(t)
	if got := strings.TrimSpace(e2.mustOrbit("fetch", "oci-archive:"+out)); got != imgs[0].ID {
		t.Fatalf("re-import gave %s, want %s", got, imgs[0].ID)
	}
}

func TestImageRenderExtractAndCatManifest(t *testing.T) {
	e := newEnv(t)
	e.fetchDemo()
	dir := t.TempDir()
	e.mustOrbit("image", "render", "demo", filepath.Join(dir, "r"))
	if fi, err := os.Stat(filepath.Join(dir, "r", "bin", "busybox")); err != nil || fi.Mode()&0o111 == 0 {
		t.Fatalf("rendered busybox: %v %v", fi, err)
	}
	e.mustOrbit("image", "extract", "demo", filepath.Join(dir, "x"))
	for _, f := range []string{"rootfs/bin/busybox", "config.json", "manifest.json"} {
		if _, err := os.Stat(filepath.Join(dir, "x", f)); err != nil {
			t.Errorf("extract: %v", err)
		}
	}
	m := e.mustOrbit("image", "cat-manifest", "demo")
	var parsed ocispec.Manifest
	if err := json.Unmarshal([]byte(m), &parsed); err != nil || len(parsed.Layers) != 1 {
		t.Fatalf("cat-manifest printed %q: %v", m, err)
	}
	var imgs []struct{ ID string }
	json.Unmarshal([]byte(e.mustOrbit("image", "list", "--format=json")), &imgs)
	if digest.FromString(m).String() != imgs[0].ID {
		t.Fatalf("cat-manifest output does not hash to the image ID %s", imgs[0].ID)
	}
}

func TestImageRmRefusesImageOfAPodUntilItIsCollected(t *testing.T) {
	e := newEnv(t)
	e.fetchDemo()
	e.runsEcho("demo")
	uuids := e.podUUIDs()
	if len(uuids) != 1 {
		t.Fatalf("%d pods, want 1", len(uuids))
	}
	oneLine(t, e.orbit("image", "rm", "demo"), "demo", uuids[0])
	e.mustOrbit("gc", "--grace-period=0")
	e.mustOrbit("image", "rm", "demo")
	e.storeIsEmpty(t)
}
