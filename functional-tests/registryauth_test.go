//go:build functional

package functional

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// A registry that wants credentials: fetch fails without them, naming the
// cause, and works with a docker-style auth file.
func TestFetchFromRegistryWithCredentialsFromAuthFile(t *testing.T) {
	e := newEnv(t)
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	htpasswd := filepath.Join(e.root, "htpasswd")
	os.WriteFile(htpasswd, []byte("alice:"+string(hash)+"\n"), 0o600)
	addr := startRegistryWith(t, fmt.Sprintf("auth:\n  htpasswd:\n    realm: orbit-test\n    path: %s\n", htpasswd))
	skopeoCopy(t, "oci-archive:"+filepath.Join(build, "demo.oci.tar"), "docker://"+addr+"/private/demo:1", "--dest-creds=alice:s3cret")

	authFile := func(user, pass string) string {
		f := filepath.Join(e.root, user+"-"+pass+".json")
		a := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
		os.WriteFile(f, []byte(fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, addr, a)), 0o600)
		return f
	}
	ref := "docker://" + addr + "/private/demo:1"
	anon := filepath.Join(e.root, "anonymous.json")
	os.WriteFile(anon, []byte(`{"auths":{}}`), 0o600)
	r := e.orbit("--insecure-options=http", "--auth-file="+anon, "fetch", ref)
	if r.code == 0 || !strings.Contains(strings.ToLower(r.stderr), "unauthorized") {
		t.Fatalf("no credentials: exit %d, stderr %q; want a refusal saying unauthorized", r.code, r.stderr)
	}
	if r = e.orbit("--insecure-options=http", "--auth-file="+authFile("alice", "wrong"), "fetch", ref); r.code == 0 ||
		!strings.Contains(strings.ToLower(r.stderr), "unauthorized") {
		t.Fatalf("wrong password: exit %d, stderr %q; want a refusal saying unauthorized", r.code, r.stderr)
	}
	e.mustOrbit("--insecure-options=http", "--auth-file="+authFile("alice", "s3cret"), "fetch", ref)
	if out := e.mustOrbit("run", addr+"/private/demo:1", "--exec=/bin/echo", "--", "authorized"); out != "authorized\n" {
		t.Fatalf("run printed %q", out)
	}
}
