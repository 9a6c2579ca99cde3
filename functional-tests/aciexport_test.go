//go:build functional

package functional

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// An OCI image exported as an ACI passes appc's own validator (actool,
// built from the appc/spec module), and imports and runs again.
func TestExportedACIPassesActoolAndRunsAgain(t *testing.T) {
	e := newEnv(t)
	e.fetchDemo()
	aciFile := filepath.Join(e.root, "demo.aci")
	e.mustOrbit("image", "export", "demo", aciFile)

	actool := filepath.Join(e.root, "actool")
	c := exec.Command("go", "build", "-o", actool, "github.com/appc/spec/actool")
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("build actool: %v\n%s", err, out)
	}
	if out, err := exec.Command(actool, "validate", aciFile).CombinedOutput(); err != nil {
		t.Fatalf("actool validate: %v\n%s", err, out)
	}
	out, err := exec.Command(actool, "cat-manifest", aciFile).CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"name":"demo"`) || !strings.Contains(string(out), `{"name":"version","value":"latest"}`) {
		t.Fatalf("actool cat-manifest: %v\n%s", err, out)
	}

	// Into a store of its own: the ACI is unsigned, so it needs
	// --insecure-options=image.
	other := filepath.Join(e.root, "other")
	fetch := func(args ...string) result {
		return e.orbit(append([]string{"--dir=" + other}, args...)...)
	}
	if r := fetch("fetch", aciFile); r.code == 0 {
		t.Fatal("an unsigned ACI was fetched without --insecure-options=image")
	}
	if r := fetch("--insecure-options=image", "fetch", aciFile); r.code != 0 {
		t.Fatalf("fetch the exported ACI: %s", r.stderr)
	}
	if r := fetch("run", "demo:latest", "--exec=/bin/echo", "--", "round trip"); r.code != 0 || r.stdout != "round trip\n" {
		t.Fatalf("run the re-imported image: exit %d, %q, %q", r.code, r.stdout, r.stderr)
	}
	t.Cleanup(func() {
		e.orbit("--dir="+other, "gc", "--grace-period=0")
		os.RemoveAll(other)
	})
}
