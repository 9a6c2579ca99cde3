package acifetch

import (
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/appc/spec/discovery"
)

// Kind is how an ACI reference is reached.
type Kind int

// The kinds of reference.
const (
	// File is a local ACI: a path ending in .aci, one starting with /,
	// ./ or ../, or a file:// URL.
	File Kind = iota + 1
	// URL is an ACI at an http:// or https:// URL.
	URL
	// Discovery is an appc name (NAME[:VERSION][,LABEL=VALUE...]) found by
	// appc meta discovery.
	Discovery
)

// Ref is a parsed ACI reference.
type Ref struct {
	Kind Kind
	// Path is the file of a File reference.
	Path string
	// URL is the address of a URL reference.
	URL string
	// App is the name and labels of a Discovery reference.
	App *discovery.App
	// Port is the port discovery asks on, 0 for the scheme's default: Orbit
	// lets a name's host carry one (127.0.0.1:8080/app), which appc names
	// cannot.
	Port uint
	raw  string
}

func (r Ref) String() string { return r.raw }

// IsSource reports whether s names an ACI file or URL: something to fetch
// rather than to look up in the store first.
func IsSource(s string) bool {
	r, ok := parseLocation(s)
	return ok && r.Kind != Discovery
}

// Discoverable reports whether s is an appc name that discovery could find:
// its host part has a dot (a domain or an address), so a bare store name
// such as "demo" never goes to the network.
func Discoverable(s string) bool {
	_, err := parseDiscovery(s)
	return err == nil
}

// ParseRef parses an ACI reference: a file, a URL, or a discoverable name.
func ParseRef(s string) (Ref, error) {
	if r, ok := parseLocation(s); ok {
		return r, nil
	}
	return parseDiscovery(s)
}

func parseLocation(s string) (Ref, bool) {
	switch {
	case strings.HasPrefix(s, "file://"):
		u, err := url.Parse(s)
		if err != nil || u.Host != "" && u.Host != "localhost" {
			return Ref{}, false
		}
		return Ref{Kind: File, Path: u.Path, raw: s}, true
	case strings.HasPrefix(s, "http://"), strings.HasPrefix(s, "https://"):
		return Ref{Kind: URL, URL: s, raw: s}, true
	case strings.HasSuffix(s, ".aci"), strings.HasPrefix(s, "/"), strings.HasPrefix(s, "./"), strings.HasPrefix(s, "../"):
		if strings.HasSuffix(s, ".aci") && !strings.ContainsAny(s, "/") {
			// "app.aci" is a file only if there is one; otherwise it may
			// be a name.
			if _, err := os.Stat(s); err != nil {
				return Ref{}, false
			}
		}
		return Ref{Kind: File, Path: s, raw: s}, true
	}
	return Ref{}, false
}

func parseDiscovery(s string) (Ref, error) {
	host, rest, ok := strings.Cut(s, "/")
	if !ok || rest == "" {
		return Ref{}, fmt.Errorf("%q is not a discoverable image name (HOST/PATH[:VERSION])", s)
	}
	var port uint
	if h, p, found := strings.Cut(host, ":"); found {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return Ref{}, fmt.Errorf("%q: bad port %q", s, p)
		}
		host, port = h, uint(n)
	}
	if !strings.Contains(host, ".") {
		return Ref{}, fmt.Errorf("%q is not a discoverable image name: %q is not a domain", s, host)
	}
	app, err := discovery.NewAppFromString(host + "/" + rest)
	if err != nil {
		return Ref{}, fmt.Errorf("image name %q: %w", s, err)
	}
	return Ref{Kind: Discovery, App: app, Port: port, raw: s}, nil
}

// StoreName is the name an image found by discovery is stored under.
func (r Ref) StoreName() string {
	v := r.App.Labels["version"]
	if v == "" {
		v = "latest"
	}
	return r.App.Name.String() + ":" + v
}
