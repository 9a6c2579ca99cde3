package provision

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"strings"
	"time"
)

// Where a config comes from, in the order they are tried.
const (
	// FwCfg is the config QEMU passes with
	// -fw_cfg name=opt/com.coreos/config,file=config.ign.
	FwCfg = "/sys/firmware/qemu_fw_cfg/by_name/opt/com.coreos/config/raw"
	// OEMConfig is the config on the OEM partition.
	OEMConfig = "/usr/share/oem/config.ign"
	// URLArg on the kernel command line names a URL to fetch it from.
	URLArg = "ignition.config.url"
)

// Source says where to look for a config. Empty fields are not tried.
type Source struct {
	FwCfg   string
	OEM     string
	Cmdline string // the kernel command line file, for URLArg
	URL     string // a URL given directly (overrides the command line)
}

// DefaultSource is what a booting machine looks at.
var DefaultSource = Source{FwCfg: FwCfg, OEM: OEMConfig, Cmdline: "/proc/cmdline"}

// ErrNoConfig means no source had a config: the machine boots as it is.
var ErrNoConfig = errors.New("no provisioning config")

// Fetch returns the first config found and where it came from.
func (s Source) Fetch(ctx context.Context) ([]byte, string, error) {
	for _, f := range []string{s.FwCfg, s.OEM} {
		if f == "" {
			continue
		}
		b, err := os.ReadFile(f)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, "", fmt.Errorf("read config from %s: %w", f, err)
		}
		return b, f, nil
	}
	url := s.URL
	if url == "" && s.Cmdline != "" {
		b, err := os.ReadFile(s.Cmdline)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, "", fmt.Errorf("read kernel command line: %w", err)
		}
		for _, a := range strings.Fields(string(b)) {
			if v, ok := strings.CutPrefix(a, URLArg+"="); ok {
				url = v
			}
		}
	}
	if url == "" {
		return nil, "", ErrNoConfig
	}
	b, err := fetchURL(ctx, url)
	if err != nil {
		return nil, "", err
	}
	return b, url, nil
}

// fetchURL gets a config over HTTP(S), retrying while the network comes
// up, for at most two minutes.
func fetchURL(ctx context.Context, url string) ([]byte, error) {
	if !strings.HasPrefix(url, "http://") && !strings.HasPrefix(url, "https://") {
		return nil, fmt.Errorf("config URL %s: only http and https: %w", url, ErrUnsupported)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var last error
	for wait := time.Second; ; wait = min(2*wait, 10*time.Second) {
		b, err := get(ctx, url)
		if err == nil {
			return b, nil
		}
		last = err
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("fetch config from %s: %w", url, last)
		case <-time.After(wait):
		}
	}
}

func get(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %s", resp.Status)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 16<<20))
}
