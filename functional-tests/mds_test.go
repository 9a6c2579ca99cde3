//go:build functional

package functional

import (
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// startMetadataService runs `orbit metadata-service` for the test, on a
// registration socket in the test's directory and a free TCP port, and
// returns the socket. The env's cleanup stops it.
func (e *env) startMetadataService() string {
	e.t.Helper()
	l, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		e.t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	sock := filepath.Join(e.root, "mds.sock")
	_, out := e.start("metadata-service", "--socket="+sock, "--listen-port="+strconv.Itoa(port))
	waitFor(e.t, "the metadata service to listen", 10*time.Second, func() bool {
		c, err := net.Dial("unix", sock)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	e.t.Cleanup(func() {
		if e.t.Failed() {
			e.t.Logf("metadata service output:\n%s", output(out))
		}
	})
	return sock
}

// mdsGet is a shell command that fetches a metadata path with busybox's
// wget, printing the body or "FAILED".
func mdsGet(url, path string) string {
	return `wget -q -O - --header "Metadata-Flavor: AppContainer" "` + url + `/acMetadata/v1` + path + `" || echo FAILED`
}

func TestMetadataServiceServesOnlyTheRegisteredPod(t *testing.T) {
	e := newNetEnv(t)
	sock := e.startMetadataService()
	// Pod A waits, so that its token is alive while pod B tries it.
	a, waitA := e.startPod("--net=ftnet", pluginDir(), "--mds-register", "--mds-socket="+sock,
		"--set-env=K=V", "demo", "--exec=/bin/sh", "--", "-c",
		`echo "$AC_METADATA_URL" > /tmp/url; `+mdsGet("$AC_METADATA_URL", "/pod/uuid")+`; echo; while [ ! -e /tmp/go ]; do sleep 0.05; done`)
	var urlA string
	waitFor(t, "pod A's AC_METADATA_URL", 10*time.Second, func() bool {
		urlA = strings.TrimSpace(e.orbit("enter", a, "/bin/cat", "/tmp/url").stdout)
		return urlA != ""
	})
	if !strings.HasPrefix(urlA, "http://"+testGateway+":") || strings.Contains(urlA, a) {
		t.Fatalf("AC_METADATA_URL %q: want the gateway and a token that is not the UUID", urlA)
	}
	// Pod A reads its own metadata.
	if out := e.mustOrbit("enter", a, "/bin/sh", "-c", mdsGet(urlA, "/pod/uuid")); out != a {
		t.Errorf("pod A's own UUID from the service: %q, want %q", out, a)
	}
	if out := e.mustOrbit("enter", a, "/bin/sh", "-c", mdsGet(urlA, "/apps/demo/image/id")); !strings.HasPrefix(out, "sha512-") {
		t.Errorf("pod A's image ID: %q", out)
	}
	if out := e.mustOrbit("enter", a, "/bin/sh", "-c", mdsGet(urlA, "/pod/manifest")); !strings.Contains(out, `"acKind":"PodManifest"`) || !strings.Contains(out, `"K","value":"V"`) {
		t.Errorf("pod A's manifest: %q", out)
	}

	// Pod B, also registered, uses A's URL: refused. Its own works.
	out := e.mustOrbit("run", "--net=ftnet", pluginDir(), "--mds-register", "--mds-socket="+sock,
		"demo", "--exec=/bin/sh", "--", "-c",
		"echo own=$("+mdsGet("$AC_METADATA_URL", "/pod/uuid")+"); echo other=$("+mdsGet(urlA, "/pod/uuid")+")")
	lb := lines(out)
	if lb["other"] != "FAILED" {
		t.Errorf("pod B read pod A's metadata: %q", lb["other"])
	}
	if lb["own"] == "" || lb["own"] == "FAILED" || lb["own"] == a {
		t.Errorf("pod B's own UUID: %q", lb["own"])
	}
	// A token that was never given out fails the same way.
	if out := e.mustOrbit("enter", a, "/bin/sh", "-c", mdsGet(urlA[:strings.LastIndex(urlA, "/")]+"/0123456789abcdef0123456789abcdef", "/pod/uuid")); out != "FAILED\n" {
		t.Errorf("a made-up token: %q", out)
	}

	e.mustOrbit("enter", a, "/bin/touch", "/tmp/go")
	outA := waitA()
	if !strings.Contains(outA, a) {
		t.Errorf("pod A's app did not read its UUID: %q", outA)
	}
}

func TestMDSRegisterWithoutAServiceFailsClearly(t *testing.T) {
	e := newEnv(t)
	e.fetchDemo()
	r := e.orbit("run", "--net=host", "--mds-register", "--mds-socket="+filepath.Join(e.root, "none.sock"), "demo", "--exec=/bin/true")
	if r.code == 0 || !strings.Contains(r.stderr, "no metadata service is running") {
		t.Fatalf("run --mds-register with no service: %+v", r)
	}
	if p := e.podUUIDs(); len(p) != 0 {
		t.Errorf("pods left: %v", p)
	}
}
