package source

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/configfile"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// ErrPlainHTTP is returned when a registry would be reached over plain
// HTTP without Options.InsecureHTTP.
var ErrPlainHTTP = errors.New("plain HTTP refused (allow it with --insecure-options=http)")

// openDocker opens an image in a registry through the distribution
// protocol. Only the manifest and config are read here; go-containerregistry
// fetches layers when the store reads them (and handles token auth).
func openDocker(ctx context.Context, src Source, o Options) (*Opened, error) {
	var nopts []name.Option
	if o.InsecureHTTP {
		// Insecure lets go-containerregistry fall back from https to http.
		nopts = append(nopts, name.Insecure)
	}
	ref, err := name.ParseReference(src.Path, append(nopts, name.WeakValidation)...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src, err)
	}
	keys, err := authKeychain(o.AuthFile)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src, err)
	}
	img, err := remote.Image(ref,
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(keys),
		remote.WithPlatform(v1.Platform{OS: Platform.OS, Architecture: Platform.Architecture}),
		remote.WithTransport(&httpGuard{allow: o.InsecureHTTP, next: remote.DefaultTransport}),
	)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src, err)
	}
	return &Opened{Image: img, Name: ref.Name(), Closer: nopCloser{}}, nil
}

// httpGuard refuses plain-HTTP requests unless allowed: go-containerregistry
// itself falls back to http for loopback and private addresses, which a
// man in the middle could exploit.
type httpGuard struct {
	allow bool
	next  http.RoundTripper
}

func (g *httpGuard) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Scheme == "http" && !g.allow {
		return nil, fmt.Errorf("%s: %w", r.URL.Host, ErrPlainHTTP)
	}
	return g.next.RoundTrip(r)
}

// DefaultAuthFile is where credentials are read from when no --auth-file is
// given: $REGISTRY_AUTH_FILE, else ~/.docker/config.json.
func DefaultAuthFile() string {
	if f := os.Getenv("REGISTRY_AUTH_FILE"); f != "" {
		return f
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".docker", "config.json")
}

// authKeychain reads credentials from a docker-style auth file (the
// "auths" map, or a credential helper the file names). A missing default
// file means anonymous access; a missing file given explicitly is an error.
func authKeychain(file string) (authn.Keychain, error) {
	explicit := file != ""
	if !explicit {
		file = DefaultAuthFile()
	}
	if file == "" {
		return authn.NewMultiKeychain(), nil
	}
	f, err := os.Open(file)
	if errors.Is(err, os.ErrNotExist) && !explicit {
		return authn.NewMultiKeychain(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("auth file: %w", err)
	}
	defer f.Close()
	cf, err := config.LoadFromReader(f)
	if err != nil {
		return nil, fmt.Errorf("auth file %s: %w", file, err)
	}
	return &fileKeychain{cf: cf}, nil
}

type fileKeychain struct{ cf *configfile.ConfigFile }

// Resolve looks the repository up first, then its registry, as docker does.
func (k *fileKeychain) Resolve(target authn.Resource) (authn.Authenticator, error) {
	for _, key := range []string{target.String(), target.RegistryStr()} {
		if key == name.DefaultRegistry {
			key = authn.DefaultAuthKey
		}
		c, err := k.cf.GetAuthConfig(key)
		if err != nil {
			return nil, fmt.Errorf("credentials for %s: %w", key, err)
		}
		if c.Username != "" || c.Password != "" || c.Auth != "" || c.IdentityToken != "" || c.RegistryToken != "" {
			return authn.FromConfig(authn.AuthConfig{
				Username: c.Username, Password: c.Password, Auth: c.Auth,
				IdentityToken: c.IdentityToken, RegistryToken: c.RegistryToken,
			}), nil
		}
	}
	return authn.Anonymous, nil
}

// isDocker reports whether s is a docker:// source.
func isDocker(s string) (string, bool) {
	return strings.CutPrefix(s, "docker://")
}
