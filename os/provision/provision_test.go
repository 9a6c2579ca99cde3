package provision

import (
	"bytes"
	"compress/gzip"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// newTree is a small root like the OS's: passwd tables with root and a
// sudo group, and a unit shipped in /usr.
func newTree(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("SKIP: provisioning sets owners, which needs root")
	}
	root := t.TempDir()
	files := map[string]string{
		"etc/passwd":                          "root:x:0:0:root:/root:/bin/bash\n",
		"etc/group":                           "root:x:0:\nsudo:x:27:\n",
		"etc/shadow":                          "root:*:19000:0:99999:7:::\n",
		"usr/lib/systemd/system/etcd.service": "[Unit]\nDescription=etcd\n[Service]\nExecStart=/usr/bin/etcd\n[Install]\nWantedBy=multi-user.target\n",
	}
	for name, body := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func dataURL(b []byte) string { return "data:;base64," + base64.StdEncoding.EncodeToString(b) }

func read(t *testing.T, root, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestProvisionAppliesAConfigOnce(t *testing.T) {
	root := newTree(t)
	var gz bytes.Buffer
	z := gzip.NewWriter(&gz)
	_, _ = z.Write([]byte(`{"Network":"10.1.0.0/16","Backend":{"Type":"vxlan"}}`))
	_ = z.Close()
	sum := sha512.Sum512(gz.Bytes())
	config := fmt.Sprintf(`{
  "ignition": {"version": "3.4.0"},
  "passwd": {"users": [{"name": "core", "groups": ["sudo"], "passwordHash": "$6$salt$hash",
    "sshAuthorizedKeys": ["ssh-ed25519 AAAAC3Nza core@example"]},
    {"name": "root", "sshAuthorizedKeys": ["ssh-ed25519 AAAArootkey admin"]}]},
  "storage": {
    "directories": [{"path": "/var/lib/pods", "mode": 488, "user": {"name": "core"}}],
    "files": [
      {"path": "/etc/orbit/etcd.env", "mode": 384, "contents": {"source": %q}},
      {"path": "/etc/flannel/config.json", "contents": {"source": %q, "compression": "gzip",
        "verification": {"hash": "sha512-%s"}}}],
    "links": [{"path": "/etc/orbit/current", "target": "/etc/orbit/etcd.env"}]
  },
  "systemd": {"units": [
    {"name": "hello-pod.service", "enabled": true,
     "contents": "[Unit]\nDescription=hello\n[Service]\nExecStart=/usr/bin/orbit run hello\n[Install]\nWantedBy=multi-user.target\n"},
    {"name": "etcd.service", "enabled": true, "dropins": [{"name": "10-cluster.conf", "contents": "[Service]\nEnvironmentFile=/etc/orbit/etcd.env\n"}]},
    {"name": "sshd.service", "mask": true}
  ]}
}`, dataURL([]byte("ETCD_NAME=m1\n")), dataURL(gz.Bytes()), hex.EncodeToString(sum[:]))

	steps, err := Provision([]byte(config), root)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("steps: %q", steps)

	if got := read(t, root, "etc/orbit/etcd.env"); got != "ETCD_NAME=m1\n" {
		t.Errorf("etcd.env = %q", got)
	}
	if fi, _ := os.Stat(filepath.Join(root, "etc/orbit/etcd.env")); fi.Mode().Perm() != 0o600 {
		t.Errorf("etcd.env mode %v, want 0600", fi.Mode())
	}
	if got := read(t, root, "etc/flannel/config.json"); !strings.Contains(got, "vxlan") {
		t.Errorf("gzip contents not unpacked: %q", got)
	}
	if l, _ := os.Readlink(filepath.Join(root, "etc/orbit/current")); l != "/etc/orbit/etcd.env" {
		t.Errorf("link points to %q", l)
	}
	if !strings.Contains(read(t, root, "etc/passwd"), "core:x:1000:1000::/home/core:/bin/bash\n") {
		t.Errorf("passwd:\n%s", read(t, root, "etc/passwd"))
	}
	if g := read(t, root, "etc/group"); !strings.Contains(g, "sudo:x:27:core\n") || !strings.Contains(g, "core:x:1000:\n") {
		t.Errorf("group:\n%s", g)
	}
	if !strings.Contains(read(t, root, "etc/shadow"), "core:$6$salt$hash:") {
		t.Errorf("shadow:\n%s", read(t, root, "etc/shadow"))
	}
	keys := filepath.Join(root, "home/core/.ssh/authorized_keys")
	if fi, err := os.Stat(keys); err != nil || fi.Mode().Perm() != 0o600 || fi.Sys().(*syscall.Stat_t).Uid != 1000 {
		t.Errorf("core's authorized_keys: %v %v", fi, err)
	}
	if got := read(t, root, "home/core/.ssh/authorized_keys"); got != "ssh-ed25519 AAAAC3Nza core@example\n" {
		t.Errorf("core's keys %q", got)
	}
	if got := read(t, root, "root/.ssh/authorized_keys"); got != "ssh-ed25519 AAAArootkey admin\n" {
		t.Errorf("root's keys %q", got)
	}
	if fi, err := os.Stat(filepath.Join(root, "var/lib/pods")); err != nil || fi.Mode().Perm() != 0o750 || fi.Sys().(*syscall.Stat_t).Uid != 1000 {
		t.Errorf("/var/lib/pods: %v %v", fi, err)
	}
	wants := filepath.Join(root, "etc/systemd/system/multi-user.target.wants")
	if l, _ := os.Readlink(filepath.Join(wants, "hello-pod.service")); l != "/etc/systemd/system/hello-pod.service" {
		t.Errorf("hello-pod.service enabled as %q", l)
	}
	if l, _ := os.Readlink(filepath.Join(wants, "etcd.service")); l != "/usr/lib/systemd/system/etcd.service" {
		t.Errorf("etcd.service (shipped in /usr) enabled as %q", l)
	}
	if !strings.Contains(read(t, root, "etc/systemd/system/etcd.service.d/10-cluster.conf"), "EnvironmentFile") {
		t.Error("drop-in not written")
	}
	if l, _ := os.Readlink(filepath.Join(root, "etc/systemd/system/sshd.service")); l != "/dev/null" {
		t.Errorf("sshd.service masked as %q", l)
	}
	if what, ok := Done(root); !ok || what != Digest([]byte(config)) {
		t.Errorf("marker %q %v", what, ok)
	}

	// The second boot: a config (even another one) is not applied again.
	again := `{"ignition":{"version":"3.4.0"},"storage":{"files":[{"path":"/etc/orbit/etcd.env","overwrite":true,"contents":{"source":"data:,changed"}}]}}`
	steps, err = Provision([]byte(again), root)
	if err != nil || len(steps) != 0 {
		t.Errorf("second provisioning: steps %q, %v; want none", steps, err)
	}
	if got := read(t, root, "etc/orbit/etcd.env"); got != "ETCD_NAME=m1\n" {
		t.Errorf("second boot re-applied: etcd.env = %q", got)
	}
}

// snapshot is every node under root with its mode, owner and contents.
func snapshot(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, _ := d.Info()
		st := fi.Sys().(*syscall.Stat_t)
		fmt.Fprintf(&b, "%s %v %d:%d", p, fi.Mode(), st.Uid, st.Gid)
		if fi.Mode().IsRegular() {
			c, _ := os.ReadFile(p)
			fmt.Fprintf(&b, " %q", c)
		}
		b.WriteString("\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestProvisionRefusesABadConfigWholeAndWritesNothing(t *testing.T) {
	good := `{"path": "/etc/good", "contents": {"source": "data:,fine"}}`
	for name, c := range map[string]struct{ config, want string }{
		"unsupported parts": {`{"ignition":{"version":"3.4.0"},
			"storage":{"disks":[{"device":"/dev/vda","wipeTable":true}],
			  "files":[` + good + `, {"path":"/etc/remote","contents":{"source":"https://example.com/x"}}]}}`,
			"storage.disks"},
		"remote source": {`{"ignition":{"version":"3.4.0"},"storage":{"files":[` + good + `, {"path":"/etc/remote","contents":{"source":"https://example.com/x"}}]}}`,
			"https:"},
		"existing file without overwrite": {`{"ignition":{"version":"3.4.0"},"storage":{"files":[` + good + `, {"path":"/etc/passwd","contents":{"source":"data:,x"}}]}}`,
			"overwrite is not set"},
		"read-only usr": {`{"ignition":{"version":"3.4.0"},"storage":{"files":[` + good + `, {"path":"/usr/bin/evil","contents":{"source":"data:,x"}}]}}`,
			"read-only /usr"},
		"wrong hash": {`{"ignition":{"version":"3.4.0"},"storage":{"files":[` + good + `, {"path":"/etc/h","contents":{"source":"data:,x","verification":{"hash":"sha512-` + strings.Repeat("0", 128) + `"}}}]}}`,
			"the config says"},
		"unknown owner": {`{"ignition":{"version":"3.4.0"},"storage":{"files":[` + good + `, {"path":"/etc/o","user":{"name":"nobody-here"},"contents":{"source":"data:,x"}}]}}`,
			`user "nobody-here" does not exist`},
		"unit without install": {`{"ignition":{"version":"3.4.0"},"storage":{"files":[` + good + `]},"systemd":{"units":[{"name":"a.service","enabled":true,"contents":"[Service]\nExecStart=/bin/true\n"}]}}`,
			"names no WantedBy"},
		"spec 2":   {`{"ignition":{"version":"2.2.0"}}`, "parse Ignition config"},
		"not json": {`{"ignition":`, "parse Ignition config"},
	} {
		t.Run(name, func(t *testing.T) {
			root := newTree(t)
			before := snapshot(t, root)
			_, err := Provision([]byte(c.config), root)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
			if after := snapshot(t, root); after != before {
				t.Errorf("the tree changed although the config was refused:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}

func TestProvisionStaysInsideTheRoot(t *testing.T) {
	root := newTree(t)
	// A link in the tree that points at / must resolve to the root's /.
	if err := os.Symlink("/", filepath.Join(root, "etc/out")); err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("orbit-provision-escape-%d", os.Getpid())
	config := `{"ignition":{"version":"3.4.0"},"storage":{"files":[{"path":"/etc/out/` + name + `","contents":{"source":"data:,x"}}]}}`
	if _, err := Provision([]byte(config), root); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat("/" + name); err == nil {
		_ = os.Remove("/" + name)
		t.Fatal("a file was written outside the root, through a symlink")
	}
	if _, err := os.Stat(filepath.Join(root, name)); err != nil {
		t.Errorf("the file is not at the root's /: %v", err)
	}
}

func TestParseAcceptsEarlierSpec3Versions(t *testing.T) {
	for _, v := range []string{"3.0.0", "3.1.0", "3.2.0", "3.3.0", "3.4.0", "3.5.0"} {
		if _, err := Parse([]byte(`{"ignition":{"version":"` + v + `"}}`)); err != nil {
			t.Errorf("spec %s: %v", v, err)
		}
	}
}
