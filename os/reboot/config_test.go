package reboot

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadConfigEtcOverridesUsr(t *testing.T) {
	dir := t.TempDir()
	usr := filepath.Join(dir, "usr.conf")
	etc := filepath.Join(dir, "etc.conf")
	if err := os.WriteFile(usr, []byte("GROUP=stable\nSERVER=https://updates.example/v1/update/\nREBOOT_STRATEGY=reboot\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(etc, []byte(`# this machine
REBOOT_STRATEGY=etcd-lock
LOCKSMITHD_ENDPOINT="http://10.0.0.1:2379, http://10.0.0.2:2379"
LOCKSMITHD_GROUP=workers
LOCKSMITHD_REBOOT_WINDOW_START=Thu 04:00
LOCKSMITHD_REBOOT_WINDOW_LENGTH=1h
`), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := ReadConfig(usr, etc, filepath.Join(dir, "missing.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Strategy != StrategyEtcdLock || c.Group != "workers" || len(c.Endpoints) != 2 ||
		c.Endpoints[1] != "http://10.0.0.2:2379" || c.Window.String() != "Thu 04:00 for 1h0m0s" {
		t.Errorf("config %+v", c)
	}
}

func TestParseConfig(t *testing.T) {
	c, err := ParseConfig(map[string]string{})
	if err != nil || c.Strategy != StrategyReboot {
		t.Errorf("empty config: %+v, %v; want best-effort to mean reboot without etcd", c, err)
	}
	c, err = ParseConfig(map[string]string{"LOCKSMITHD_ENDPOINT": "http://e:2379"})
	if err != nil || c.Strategy != StrategyEtcdLock {
		t.Errorf("endpoint only: %+v, %v; want best-effort to mean etcd-lock", c, err)
	}
	for _, bad := range []map[string]string{
		{"REBOOT_STRATEGY": "now"},
		{"REBOOT_STRATEGY": "etcd-lock"},
		{"LOCKSMITHD_GROUP": "a/b"},
		{"LOCKSMITHD_REBOOT_WINDOW_START": "Thu 04:00"},
	} {
		if _, err := ParseConfig(bad); err == nil {
			t.Errorf("ParseConfig(%v) accepted", bad)
		}
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "update.conf")
	_ = os.WriteFile(p, []byte("REBOOT_STRATEGY\n"), 0o644)
	if _, err := ReadConfig(p); err == nil || !strings.Contains(err.Error(), "update.conf:1") {
		t.Errorf("a line without = : %v, want an error naming the file and line", err)
	}
}

func TestParseConfigTLS(t *testing.T) {
	c, err := ParseConfig(map[string]string{"LOCKSMITHD_ENDPOINT": "https://10.0.0.1:2379",
		"LOCKSMITHD_ETCD_CAFILE": "/etc/ssl/etcd/ca.pem", "LOCKSMITHD_ETCD_CERTFILE": "/etc/ssl/etcd/me.pem", "LOCKSMITHD_ETCD_KEYFILE": "/etc/ssl/etcd/me-key.pem"})
	if err != nil || c.TLS != (TLSFiles{"/etc/ssl/etcd/ca.pem", "/etc/ssl/etcd/me.pem", "/etc/ssl/etcd/me-key.pem"}) || c.Strategy != StrategyEtcdLock {
		t.Errorf("TLS config: %+v, %v", c, err)
	}
	for _, kv := range []map[string]string{
		{"LOCKSMITHD_ENDPOINT": "https://10.0.0.1:2379", "LOCKSMITHD_ETCD_CERTFILE": "/c.pem"},
		{"LOCKSMITHD_ENDPOINT": "http://10.0.0.1:2379", "LOCKSMITHD_ETCD_CAFILE": "/ca.pem"},
	} {
		if _, err := ParseConfig(kv); err == nil || !strings.Contains(err.Error(), "LOCKSMITHD_") {
			t.Errorf("%v: %v, want an error naming the key", kv, err)
		}
	}
	if _, err := DialEtcd([]string{"http://10.0.0.1:2379"}, TLSFiles{CAFile: "/ca.pem"}); err == nil || !strings.Contains(err.Error(), "not https") {
		t.Errorf("TLS files with an http endpoint: %v", err)
	}
	if _, err := DialEtcd([]string{"https://10.0.0.1:2379"}, TLSFiles{CAFile: filepath.Join(t.TempDir(), "missing.pem")}); err == nil || !strings.Contains(err.Error(), "etcd TLS") {
		t.Errorf("a missing CA file: %v", err)
	}
}
