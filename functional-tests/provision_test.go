//go:build functional

package functional

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestProvisionFromFirmwareConfigOnce runs orbit-provision as the boot
// does, on a machine tree: the config in fw_cfg wins over the OEM one, is
// applied, and a second run (the second boot) applies nothing. A config
// with an unsupported part fails the run with the reason on stderr and
// leaves the tree as it was.
func TestProvisionFromFirmwareConfigOnce(t *testing.T) {
	bin := filepath.Join(build, "bin", "orbit-provision")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("needs build/bin/orbit-provision (make binaries): %v", err)
	}
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	for name, body := range map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/bash\n",
		"etc/group":  "root:x:0:\n",
		"etc/shadow": "root:*:19000:0:99999:7:::\n",
	} {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	fwcfg := write("fw_cfg.ign", `{"ignition":{"version":"3.4.0"},
	  "storage":{"files":[{"path":"/etc/flannel/network.json","contents":{"source":"data:,%7B%22Network%22%3A%2210.5.0.0%2F16%22%7D"}}]},
	  "systemd":{"units":[{"name":"pod-hello.service","enabled":true,
	    "contents":"[Service]\nExecStart=/usr/bin/orbit run hello\n[Install]\nWantedBy=multi-user.target\n"}]}}`)
	oem := write("oem.ign", `{"ignition":{"version":"3.4.0"},"storage":{"files":[{"path":"/etc/from-oem","contents":{"source":"data:,oem"}}]}}`)
	run := func(args ...string) (string, string, error) {
		c := exec.Command(bin, append([]string{"--root", root, "--fw-cfg", fwcfg, "--oem", oem}, args...)...)
		var out, errb strings.Builder
		c.Stdout, c.Stderr = &out, &errb
		err := c.Run()
		return out.String(), errb.String(), err
	}

	out, stderr, err := run()
	if err != nil {
		t.Fatalf("first boot: %v\n%s%s", err, out, stderr)
	}
	if !strings.Contains(out, "from "+fwcfg) {
		t.Errorf("first boot did not take fw_cfg's config:\n%s", out)
	}
	if b, err := os.ReadFile(filepath.Join(root, "etc/flannel/network.json")); err != nil || string(b) != `{"Network":"10.5.0.0/16"}` {
		t.Errorf("flannel config: %q %v", b, err)
	}
	if l, err := os.Readlink(filepath.Join(root, "etc/systemd/system/multi-user.target.wants/pod-hello.service")); err != nil || l != "/etc/systemd/system/pod-hello.service" {
		t.Errorf("pod unit not enabled: %q %v", l, err)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/from-oem")); err == nil {
		t.Error("the OEM config was applied too")
	}

	// The second boot, with a changed config: nothing is applied.
	write("fw_cfg.ign", `{"ignition":{"version":"3.4.0"},"storage":{"files":[{"path":"/etc/second","contents":{"source":"data:,x"}}]}}`)
	if out, stderr, err := run(); err != nil || !strings.Contains(out, "already provisioned") {
		t.Errorf("second boot: %v\n%s%s", err, out, stderr)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/second")); err == nil {
		t.Error("the second boot applied a config")
	}

	// A fresh machine with a config it cannot apply whole.
	if err := os.Remove(filepath.Join(root, "var/lib/orbit/provisioned")); err != nil {
		t.Fatal(err)
	}
	write("fw_cfg.ign", `{"ignition":{"version":"3.4.0"},"storage":{
	  "files":[{"path":"/etc/would-be-written","contents":{"source":"data:,x"}}],
	  "filesystems":[{"device":"/dev/vdb","format":"ext4","path":"/var/data"}]}}`)
	_, stderr, err = run()
	if err == nil || !strings.Contains(stderr, "storage.filesystems") || !strings.Contains(stderr, "nothing applied") {
		t.Errorf("unsupported config: %v, stderr:\n%s", err, stderr)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/would-be-written")); err == nil {
		t.Error("a refused config was half applied")
	}
	if _, err := os.Stat(filepath.Join(root, "var/lib/orbit/provisioned")); err == nil {
		t.Error("a refused config was marked done")
	}
}
