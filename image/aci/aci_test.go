package aci

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"sort"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/ulikunitz/xz"
)

const manifestJSON = `{
  "acKind": "ImageManifest", "acVersion": "0.8.11", "name": "example.com/app",
  "labels": [{"name": "version", "value": "1.0"}, {"name": "os", "value": "linux"}, {"name": "arch", "value": "aarch64"}],
  "annotations": [{"name": "authors", "value": "Alice"}],
  "app": {
    "exec": ["/bin/app", "--serve"], "user": "1000", "group": "1000",
    "workingDirectory": "/srv",
    "environment": [{"name": "PATH", "value": "/bin"}],
    "ports": [{"name": "http", "protocol": "tcp", "port": 8080}, {"name": "dns", "protocol": "udp", "port": 53, "count": 2}],
    "mountPoints": [{"name": "data", "path": "/var/data"}]
  }
}`

type entry struct {
	hdr  tar.Header
	body string
}

func file(name, body string) entry {
	return entry{tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))}, body}
}

func dir(name string) entry {
	return entry{tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o755}, ""}
}

func makeTar(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.hdr
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func goodACI(t *testing.T) []byte {
	return makeTar(t,
		file("manifest", manifestJSON),
		dir("rootfs/"),
		dir("rootfs/bin/"),
		file("rootfs/bin/app", "#!/bin/sh\n"),
		entry{tar.Header{Name: "rootfs/bin/app2", Typeflag: tar.TypeLink, Linkname: "rootfs/bin/app"}, ""},
		entry{tar.Header{Name: "./rootfs/bin/sh", Typeflag: tar.TypeSymlink, Linkname: "app"}, ""},
	)
}

// layerEntries lists the names (and link targets) in a converted layer.
func layerEntries(t *testing.T, l *FileLayer) []string {
	t.Helper()
	rc, err := l.Layer().Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	var out []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		s := h.Name
		if h.Linkname != "" {
			s += " -> " + h.Linkname
		}
		out = append(out, s)
	}
}

func TestACIRootfsIsReRootedIntoOneLayer(t *testing.T) {
	raw := goodACI(t)
	for name, compress := range map[string]func([]byte) []byte{
		"tar":  func(b []byte) []byte { return b },
		"gzip": gzipped,
		"xz":   xzed,
	} {
		t.Run(name, func(t *testing.T) {
			tmp := t.TempDir()
			a, err := Read(context.Background(), bytes.NewReader(compress(raw)), tmp)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			want := []string{"./", "bin/", "bin/app", "bin/app2 -> bin/app", "bin/sh -> app"}
			if got := layerEntries(t, a.Layer); strings.Join(got, "|") != strings.Join(want, "|") {
				t.Fatalf("layer entries %q, want %q", got, want)
			}
			sum := sha512.Sum512(raw)
			if a.ID != "sha512-"+hex.EncodeToString(sum[:]) {
				t.Fatalf("ID %s is not the SHA-512 of the uncompressed ACI", a.ID)
			}
			if a.Manifest.Name != "example.com/app" || StoreName(a.Manifest) != "example.com/app:1.0" {
				t.Fatalf("manifest name %s, store name %s", a.Manifest.Name, StoreName(a.Manifest))
			}
			// The digests describe the file.
			b, err := os.ReadFile(a.Layer.Path)
			if err != nil {
				t.Fatal(err)
			}
			if d, _, _ := v1.SHA256(bytes.NewReader(b)); d != a.Layer.Digest || int64(len(b)) != a.Layer.Size {
				t.Fatalf("layer digest %s size %d, file hashes to %s size %d", a.Layer.Digest, a.Layer.Size, d, len(b))
			}
			a.Close()
			if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
				t.Fatalf("Close left %v", ents)
			}
		})
	}
}

func gzipped(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func xzed(b []byte) []byte {
	var buf bytes.Buffer
	w, err := xz.NewWriter(&buf)
	if err != nil {
		panic(err)
	}
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func TestHostileACIEntriesAreRefused(t *testing.T) {
	m := file("manifest", manifestJSON)
	for name, entries := range map[string][]entry{
		"dotdot out of rootfs":       {m, file("rootfs/../etc/passwd", "x")},
		"dotdot inside rootfs":       {m, file("rootfs/a/../../x", "x")},
		"dotdot at top":              {m, file("../x", "x")},
		"absolute name":              {m, file("/rootfs/etc/passwd", "x")},
		"outside rootfs":             {m, file("etc/passwd", "x")},
		"hard link out of rootfs":    {m, entry{tar.Header{Name: "rootfs/x", Typeflag: tar.TypeLink, Linkname: "manifest"}, ""}},
		"hard link with dotdot":      {m, entry{tar.Header{Name: "rootfs/x", Typeflag: tar.TypeLink, Linkname: "rootfs/../../etc/shadow"}, ""}},
		"whiteout":                   {m, file("rootfs/bin/.wh.sh", "")},
		"no manifest":                {file("rootfs/x", "x")},
		"two manifests":              {m, m},
		"manifest is a symlink":      {{tar.Header{Name: "manifest", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"}, ""}},
		"exec with dotdot":           {file("manifest", strings.Replace(manifestJSON, `"/bin/app"`, `"/bin/../../app"`, 1))},
		"working dir with dotdot":    {file("manifest", strings.Replace(manifestJSON, `"/srv"`, `"/srv/../.."`, 1))},
		"mount point with dotdot":    {file("manifest", strings.Replace(manifestJSON, `"/var/data"`, `"/../../host"`, 1))},
		"relative exec":              {file("manifest", strings.Replace(manifestJSON, `"/bin/app"`, `"bin/app"`, 1))},
		"manifest of the wrong kind": {file("manifest", strings.Replace(manifestJSON, "ImageManifest", "PodManifest", 1))},
	} {
		t.Run(name, func(t *testing.T) {
			tmp := t.TempDir()
			a, err := Read(context.Background(), bytes.NewReader(makeTar(t, entries...)), tmp)
			if err == nil {
				a.Close()
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
				t.Fatalf("a refused ACI left %v", ents)
			}
		})
	}
}

func TestACIManifestBecomesOCIConfig(t *testing.T) {
	m, err := ParseManifest([]byte(manifestJSON))
	if err != nil {
		t.Fatal(err)
	}
	cf := Config(m)
	if strings.Join(cf.Config.Entrypoint, " ") != "/bin/app --serve" || len(cf.Config.Cmd) != 0 {
		t.Errorf("entrypoint %q cmd %q", cf.Config.Entrypoint, cf.Config.Cmd)
	}
	if strings.Join(cf.Config.Env, ",") != "PATH=/bin" || cf.Config.WorkingDir != "/srv" || cf.Config.User != "1000:1000" {
		t.Errorf("env %q workdir %q user %q", cf.Config.Env, cf.Config.WorkingDir, cf.Config.User)
	}
	var ports []string
	for p := range cf.Config.ExposedPorts {
		ports = append(ports, p)
	}
	sort.Strings(ports)
	if strings.Join(ports, ",") != "53/udp,54/udp,8080/tcp" {
		t.Errorf("exposed ports %q", ports)
	}
	if _, ok := cf.Config.Volumes["/var/data"]; !ok {
		t.Errorf("volumes %v", cf.Config.Volumes)
	}
	if cf.Config.Labels["version"] != "1.0" || cf.Config.Labels["authors"] != "Alice" {
		t.Errorf("labels %v", cf.Config.Labels)
	}
	if cf.OS != "linux" || cf.Architecture != "arm64" {
		t.Errorf("platform %s/%s", cf.OS, cf.Architecture)
	}
}

func TestACIImageStacksDependencyLayersUnderItsOwn(t *testing.T) {
	tmp := t.TempDir()
	dep, err := Read(context.Background(), bytes.NewReader(makeTar(t,
		file("manifest", strings.Replace(manifestJSON, "example.com/app", "example.com/base", 1)),
		file("rootfs/etc/base", "base"))), tmp)
	if err != nil {
		t.Fatal(err)
	}
	defer dep.Close()
	a, err := Read(context.Background(), bytes.NewReader(goodACI(t)), tmp)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	img, err := Image(a, []v1.Layer{dep.Layer.Layer()}, map[string]string{AnnotationImageID: a.ID})
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Layers) != 2 || m.Layers[0].Digest != dep.Layer.Digest || m.Layers[1].Digest != a.Layer.Digest {
		t.Fatalf("layers %+v, want the dependency's then the image's", m.Layers)
	}
	if m.Annotations[AnnotationImageID] != a.ID || m.MediaType != "application/vnd.oci.image.manifest.v1+json" {
		t.Fatalf("manifest %s annotations %v", m.MediaType, m.Annotations)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if len(cf.RootFS.DiffIDs) != 2 || cf.RootFS.DiffIDs[1] != a.Layer.DiffID || cf.Config.Entrypoint[0] != "/bin/app" {
		t.Fatalf("config %+v", cf)
	}
	// The layer reads back as what its digest says.
	rc, err := img.LayerByDigest(a.Layer.Digest)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := rc.Compressed()
	got, _, _ := v1.SHA256(c)
	c.Close()
	if got != a.Layer.Digest {
		t.Fatalf("compressed layer hashes to %s", got)
	}
}
