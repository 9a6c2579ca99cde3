package network

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/orbit-pods/orbit/pod"
)

func pluginDir(t *testing.T, names ...string) string {
	d := t.TempDir()
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(d, n), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

func TestNoNetIsLoopbackOnly(t *testing.T) {
	n, err := Resolve(Options{})
	if err != nil || n != nil {
		t.Fatalf("Resolve() = %v, %v; want nil, nil", n, err)
	}
	n, err = Resolve(Options{Nets: []string{"host"}})
	if err != nil || n.Mode != pod.NetHost {
		t.Fatalf("--net=host: %v, %v", n, err)
	}
}

func TestNetNoneAndHostStandAlone(t *testing.T) {
	for _, v := range []string{"host,default", "none:IP=1.2.3.4", "none,host"} {
		if _, err := Resolve(Options{Nets: []string{v}}); !errors.Is(err, ErrInvalid) {
			t.Errorf("--net=%s: err %v, want ErrInvalid", v, err)
		}
	}
	if _, err := Resolve(Options{Nets: []string{"none"}, Ports: []string{"80:8080"}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("--port without a network: err %v, want ErrInvalid", err)
	}
}

func TestNetArgsAndPortsAreRecorded(t *testing.T) {
	plugins := pluginDir(t, "bridge", "host-local", "portmap")
	n, err := Resolve(Options{
		Nets:       []string{"default:IP=172.31.9.9;FOO=bar", "default-restricted"},
		Ports:      []string{"http:8080", "53/udp:5353"},
		Exposed:    map[string]pod.PortMapping{"http": {ContainerPort: 80, Protocol: "tcp"}},
		PluginDirs: []string{plugins},
		IPAMDir:    "/x",
	})
	if err != nil {
		t.Fatal(err)
	}
	if n.Mode != pod.NetCNI || len(n.Networks) != 2 {
		t.Fatalf("got %+v", n)
	}
	if a := n.Networks[0].Args; len(a) != 2 || a[0] != [2]string{"IP", "172.31.9.9"} || a[1] != [2]string{"FOO", "bar"} {
		t.Errorf("args %v", a)
	}
	want := []pod.PortMapping{{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}, {HostPort: 5353, ContainerPort: 53, Protocol: "udp"}}
	if len(n.Ports) != 2 || n.Ports[0] != want[0] || n.Ports[1] != want[1] {
		t.Errorf("ports %+v, want %+v", n.Ports, want)
	}
}

func TestMissingPluginIsRefused(t *testing.T) {
	plugins := pluginDir(t, "bridge", "host-local")
	_, err := Resolve(Options{Nets: []string{"default"}, PluginDirs: []string{plugins}})
	if err == nil {
		t.Fatal("no error for a missing portmap plugin")
	}
}

func TestMalformedConflistIsRefused(t *testing.T) {
	d := t.TempDir()
	if err := os.WriteFile(filepath.Join(d, "bad.conflist"), []byte(`{"name": "bad", "plugins": [`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Resolve(Options{Nets: []string{"default"}, ConfigDirs: []string{d}}); err == nil {
		t.Fatal("no error for a malformed conflist")
	}
}

func TestNamedConflistReplacesBuiltin(t *testing.T) {
	d := t.TempDir()
	conf := `{"cniVersion":"1.0.0","name":"default","plugins":[{"type":"loopback"}]}`
	if err := os.WriteFile(filepath.Join(d, "10-mine.conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	n, err := Resolve(Options{Nets: []string{"default"}, ConfigDirs: []string{d}, PluginDirs: []string{pluginDir(t, "loopback")}})
	if err != nil {
		t.Fatal(err)
	}
	if string(n.Networks[0].Config) != conf {
		t.Errorf("config %s", n.Networks[0].Config)
	}
}

func TestBadPortsAreRefused(t *testing.T) {
	for _, p := range []string{"8080", "x:8080", "80:0", "80/sctp:8080", "80:99999"} {
		if _, err := ParsePort(p, nil); !errors.Is(err, ErrInvalid) {
			t.Errorf("--port=%s: err %v, want ErrInvalid", p, err)
		}
	}
}
