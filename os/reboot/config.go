package reboot

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// Strategy is how a machine reboots once an update needs it.
type Strategy string

const (
	// StrategyReboot reboots at once (inside the window, if one is set).
	StrategyReboot Strategy = "reboot"
	// StrategyEtcdLock takes a slot of the etcd semaphore first.
	StrategyEtcdLock Strategy = "etcd-lock"
	// StrategyOff never reboots; a person does.
	StrategyOff Strategy = "off"
	// StrategyBestEffort is etcd-lock when an etcd endpoint is configured
	// and reboot otherwise (locksmith's default checked whether etcd ran).
	StrategyBestEffort Strategy = "best-effort"
)

// ConfigFiles are read in order, later keys overriding earlier ones: the
// OS's defaults in /usr, then the machine's own in /etc.
var ConfigFiles = []string{"/usr/share/orbit/update.conf", "/etc/orbit/update.conf"}

// Config is the reboot manager's part of update.conf.
type Config struct {
	Strategy  Strategy
	Window    Window
	Endpoints []string // LOCKSMITHD_ENDPOINT, comma-separated
	Group     string   // LOCKSMITHD_GROUP
	// TLS: LOCKSMITHD_ETCD_CAFILE, LOCKSMITHD_ETCD_CERTFILE,
	// LOCKSMITHD_ETCD_KEYFILE.
	TLS TLSFiles
}

// ReadConfig reads update.conf files in order; missing files are skipped.
func ReadConfig(paths ...string) (Config, error) {
	kv := map[string]string{}
	for _, p := range paths {
		if err := readKV(p, kv); err != nil {
			return Config{}, err
		}
	}
	return ParseConfig(kv)
}

// readKV reads KEY=VALUE lines (blank lines and # comments skipped, values
// optionally quoted) into kv.
func readKV(path string, kv map[string]string) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read update config: %w", err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for n := 1; s.Scan(); n++ {
		line := strings.TrimSpace(s.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return fmt.Errorf("%s:%d: want KEY=VALUE, got %q", path, n, line)
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		kv[strings.TrimSpace(k)] = v
	}
	if err := s.Err(); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	return nil
}

// ParseConfig makes a Config of update.conf's keys. Keys it does not know
// belong to the update agent and are ignored.
func ParseConfig(kv map[string]string) (Config, error) {
	c := Config{
		Strategy:  Strategy(kv["REBOOT_STRATEGY"]),
		Endpoints: Endpoints(kv["LOCKSMITHD_ENDPOINT"]),
		Group:     kv["LOCKSMITHD_GROUP"],
		TLS:       TLSFiles{CAFile: kv["LOCKSMITHD_ETCD_CAFILE"], CertFile: kv["LOCKSMITHD_ETCD_CERTFILE"], KeyFile: kv["LOCKSMITHD_ETCD_KEYFILE"]},
	}
	switch c.Strategy {
	case "":
		c.Strategy = StrategyBestEffort
	case StrategyReboot, StrategyEtcdLock, StrategyOff, StrategyBestEffort:
	default:
		return Config{}, fmt.Errorf("REBOOT_STRATEGY=%q: want reboot, etcd-lock, best-effort or off", c.Strategy)
	}
	if c.Strategy == StrategyBestEffort {
		c.Strategy = StrategyReboot
		if len(c.Endpoints) > 0 {
			c.Strategy = StrategyEtcdLock
		}
	}
	if c.Strategy == StrategyEtcdLock && len(c.Endpoints) == 0 {
		return Config{}, errors.New("REBOOT_STRATEGY=etcd-lock needs LOCKSMITHD_ENDPOINT (etcd client URLs)")
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		return Config{}, errors.New("LOCKSMITHD_ETCD_CERTFILE and LOCKSMITHD_ETCD_KEYFILE go together")
	}
	if !c.TLS.Empty() {
		for _, e := range c.Endpoints {
			if !strings.HasPrefix(e, "https://") {
				return Config{}, fmt.Errorf("LOCKSMITHD_ENDPOINT %s: the LOCKSMITHD_ETCD_* files are for https endpoints", e)
			}
		}
	}
	if strings.Contains(c.Group, "/") {
		return Config{}, fmt.Errorf("LOCKSMITHD_GROUP=%q: a group name cannot contain /", c.Group)
	}
	w, err := ParseWindow(kv["LOCKSMITHD_REBOOT_WINDOW_START"], kv["LOCKSMITHD_REBOOT_WINDOW_LENGTH"])
	if err != nil {
		return Config{}, err
	}
	c.Window = w
	return c, nil
}
