//go:build functional

package functional

import (
	"archive/tar"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// aceImage builds one of the appc ACE validator's ACIs: the validator from
// the appc/spec module in go.mod, with the spec's own image manifest.
func aceImage(t *testing.T, dir, validator, which string) string {
	t.Helper()
	src, err := exec.Command(goTool(), "list", "-m", "-f", "{{.Dir}}", "github.com/appc/spec").Output()
	if err != nil {
		t.Fatalf("find github.com/appc/spec: %v", err)
	}
	m, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(src)), "ace", "image_manifest_"+which+".json.in"))
	if err != nil {
		t.Fatal(err)
	}
	manifest := strings.NewReplacer("@ACI_OS@", "linux", "@ACI_ARCH@", "amd64").Replace(string(m))
	bin, err := os.ReadFile(validator)
	if err != nil {
		t.Fatal(err)
	}
	rootfs := []aciFile{
		{hdr: tar.Header{Name: "ace-validator", Typeflag: tar.TypeReg, Mode: 0o755}, body: bin},
		{hdr: tar.Header{Name: "opt/", Typeflag: tar.TypeDir, Mode: 0o755}},
		{hdr: tar.Header{Name: "opt/acvalidator/", Typeflag: tar.TypeDir, Mode: 0o755}},
		{hdr: tar.Header{Name: "db/", Typeflag: tar.TypeDir, Mode: 0o755}},
	}
	p, _ := buildACI(t, dir, "ace-validator-"+which+".aci", manifest, rootfs)
	return p
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "/usr/local/go/bin/go"
}

// The appc ACE validator, as a two-app pod sharing a volume, registered
// with the metadata service: every check passes, the metadata service's
// (pod and app manifests, annotations, UUID, image ID, HMAC sign and
// verify) included.
func TestACEValidatorPassesEveryCheck(t *testing.T) {
	e := newNetEnv(t)
	sock := e.startMetadataService()
	dir := t.TempDir()
	validator := filepath.Join(dir, "ace-validator")
	b := exec.Command(goTool(), "build", "-o", validator, "github.com/appc/spec/ace")
	b.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := b.CombinedOutput(); err != nil {
		t.Fatalf("build the ACE validator: %v\n%s", err, out)
	}
	for _, which := range []string{"main", "sidekick"} {
		e.mustOrbit("--insecure-options=image", "fetch", aceImage(t, dir, validator, which))
	}
	r := e.orbit("run", "--net=ftnet", pluginDir(), "--mds-register", "--mds-socket="+sock,
		"--volume=database,kind=empty",
		"coreos.com/ace-validator-main:0.8.11", "--mount=volume=database,target=/db",
		"---", "coreos.com/ace-validator-sidekick:0.8.11", "--mount=volume=database,target=/db")
	t.Logf("ACE validator: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	for _, ok := range []string{"prestart OK", "main OK", "sidekick OK", "poststop OK"} {
		if !strings.Contains(r.stdout, ok) {
			t.Errorf("no %q from the validator", ok)
		}
	}
	for _, l := range strings.Split(r.stderr, "\n") {
		if f, ok := strings.CutPrefix(l, "==> "); ok {
			t.Errorf("ACE check failed: %s", f)
		}
	}
	if r.code != 0 {
		t.Errorf("the pod exited %d, want 0", r.code)
	}
}
