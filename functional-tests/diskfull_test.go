//go:build functional

package functional

import (
	"crypto/rand"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// A disk that fills up while a layer unpacks: the fetch fails saying so,
// nothing half-made is visible or left behind, and the store works again
// once there is room.
func TestDiskFullDuringUnpackLeavesStoreClean(t *testing.T) {
	e := newEnv(t)
	requireTool(t, "mkfs.ext4")
	img := filepath.Join(e.root, "small.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 24<<20); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	small := filepath.Join(e.root, "small")
	os.Mkdir(small, 0o755)
	if out, err := exec.Command("mount", "-o", "loop", img, small).CombinedOutput(); err != nil {
		t.Fatalf("mount -o loop: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = unix.Unmount(small, unix.MNT_DETACH) })

	// An image whose one layer (random, so incompressible) cannot fit.
	layer := filepath.Join(e.root, "big-layer")
	os.Mkdir(layer, 0o755)
	f, err := os.Create(filepath.Join(layer, "blob"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(f, rand.Reader, 16<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	archive := filepath.Join(e.root, "big.tar")
	if out, err := exec.Command(filepath.Join(build, "bin", "orbit-mkimage"), "--layer", layer, "--name", "big:1", "--cmd", `["/blob"]`, "-o", archive).CombinedOutput(); err != nil {
		t.Fatalf("orbit-mkimage: %v\n%s", err, out)
	}

	data := filepath.Join(small, "orbit")
	orbit := func(args ...string) result { return e.orbit(append([]string{"--dir=" + data}, args...)...) }
	r := orbit("fetch", "oci-archive:"+archive)
	if r.code == 0 || !strings.Contains(r.stderr, "no space left on device") {
		t.Fatalf("fetch onto a full disk: exit %d, stderr %q; want a failure saying no space left", r.code, r.stderr)
	}
	oneLine(t, r, "big.tar", "no space left on device")
	if out := orbit("image", "list", "--format=json"); out.code != 0 || strings.Contains(out.stdout, "big") {
		t.Fatalf("image list after the failed fetch: %+v", out)
	}
	for _, sub := range []string{"images/tmp", "images/layers"} {
		if ents, _ := os.ReadDir(filepath.Join(data, sub)); len(ents) != 0 {
			t.Errorf("%s holds %d entries after the failed fetch", sub, len(ents))
		}
	}
	// With room again, the store works.
	if r := orbit("fetch", "oci-archive:"+filepath.Join(build, "demo.oci.tar")); r.code != 0 {
		t.Fatalf("fetch after the failure: %s", r.stderr)
	}
	if r := orbit("run", "demo", "--exec=/bin/echo", "--", "room again"); r.stdout != "room again\n" {
		t.Fatalf("run after the failure: %+v", r)
	}
	orbit("gc", "--grace-period=0")
}
