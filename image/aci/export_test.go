package aci

import (
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestManifestFromConfig(t *testing.T) {
	cf := &v1.ConfigFile{OS: "linux", Architecture: "amd64", Config: v1.Config{
		Entrypoint: []string{"/bin/httpd"}, Cmd: []string{"-f"}, User: "1000:100", WorkingDir: "/srv",
		Env: []string{"A=1"}, ExposedPorts: map[string]struct{}{"80/tcp": {}, "53/udp": {}},
	}}
	m, err := ManifestFromConfig("127.0.0.1:5000/Web/App", "1.2", cf)
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Name) != "127.0.0.1_5000/web/app" {
		t.Errorf("name %q", m.Name)
	}
	if v, _ := m.GetLabel("version"); v != "1.2" {
		t.Errorf("version %q", v)
	}
	a := m.App
	if a == nil || a.User != "1000" || a.Group != "100" || a.WorkingDirectory != "/srv" || len(a.Exec) != 2 {
		t.Fatalf("app %+v", a)
	}
	if len(a.Ports) != 2 || a.Ports[0].Name != "53-udp" || a.Ports[1].Port != 80 {
		t.Errorf("ports %+v", a.Ports)
	}
	if v, ok := a.Environment.Get("A"); !ok || v != "1" {
		t.Errorf("environment %+v", a.Environment)
	}
}
