package omaha

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Client POSTs requests to an Omaha server.
type Client struct {
	URL  string
	HTTP *http.Client
}

// maxResponse bounds a server's answer.
const maxResponse = 1 << 20

// Do sends a request and decodes the response.
func (c *Client) Do(ctx context.Context, req *Request) (*Response, error) {
	req.Protocol = Protocol
	body, err := xml.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode omaha request: %w", err)
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL, bytes.NewReader(append([]byte(xml.Header), body...)))
	if err != nil {
		return nil, fmt.Errorf("omaha request to %s: %w", c.URL, err)
	}
	hr.Header.Set("Content-Type", "text/xml; charset=utf-8")
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(hr)
	if err != nil {
		return nil, fmt.Errorf("omaha request to %s: %w", c.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return nil, fmt.Errorf("read omaha response from %s: %w", c.URL, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("omaha server %s: HTTP %s", c.URL, resp.Status)
	}
	var r Response
	if err := xml.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decode omaha response from %s: %w", c.URL, err)
	}
	if r.Protocol != Protocol {
		return nil, fmt.Errorf("omaha server %s speaks protocol %q, want %s", c.URL, r.Protocol, Protocol)
	}
	return &r, nil
}

// App returns the response's part for an app id.
func (r *Response) App(id string) (*AppResponse, error) {
	for _, a := range r.Apps {
		if strings.EqualFold(a.ID, id) {
			if a.Status != "" && a.Status != StatusOK {
				return nil, fmt.Errorf("omaha server: app %s: %s", id, a.Status)
			}
			return a, nil
		}
	}
	return nil, fmt.Errorf("omaha server: no answer for app %s", id)
}

// Offer is an update as a server offered it.
type Offer struct {
	Version string
	URL     string // of the payload
	Size    int64
	SHA256  []byte // of the whole payload, as the server gave it
}

// Offer returns the update an update check answer offers, nil for
// "noupdate", or an error for an answer that cannot be acted on.
func (u *UpdateResponse) Offer() (*Offer, error) {
	if u == nil {
		return nil, fmt.Errorf("omaha server: no updatecheck in the answer")
	}
	switch u.Status {
	case StatusNoUpdate:
		return nil, nil
	case StatusOK:
	default:
		return nil, fmt.Errorf("omaha server: updatecheck status %q", u.Status)
	}
	if u.Manifest == nil || len(u.Manifest.Packages.Packages) != 1 || u.URLs == nil || len(u.URLs.URLs) == 0 {
		return nil, fmt.Errorf("omaha server: update offered without exactly one package and a URL")
	}
	p := u.Manifest.Packages.Packages[0]
	var sum []byte
	if p.SHA256Hex != "" {
		b, err := hex.DecodeString(p.SHA256Hex)
		if err != nil || len(b) != 32 {
			return nil, fmt.Errorf("omaha server: package hash_sha256 %q is not a SHA-256", p.SHA256Hex)
		}
		sum = b
	}
	for _, a := range u.Manifest.Actions.Actions {
		if a.Event != "postinstall" || a.SHA256 == "" {
			continue
		}
		b, err := base64.StdEncoding.DecodeString(a.SHA256)
		if err != nil || len(b) != 32 {
			return nil, fmt.Errorf("omaha server: postinstall sha256 %q is not a SHA-256", a.SHA256)
		}
		if sum != nil && !bytes.Equal(sum, b) {
			return nil, fmt.Errorf("omaha server: package hash_sha256 and postinstall sha256 differ")
		}
		sum = b
	}
	if sum == nil {
		return nil, fmt.Errorf("omaha server: update %s offered without a SHA-256", u.Manifest.Version)
	}
	base, err := url.Parse(u.URLs.URLs[0].CodeBase)
	if err != nil {
		return nil, fmt.Errorf("omaha server: codebase: %w", err)
	}
	ref, err := url.Parse(url.PathEscape(p.Name))
	if err != nil {
		return nil, fmt.Errorf("omaha server: package name %q: %w", p.Name, err)
	}
	if !strings.HasSuffix(base.Path, "/") {
		base.Path += "/"
	}
	return &Offer{Version: u.Manifest.Version, URL: base.ResolveReference(ref).String(), Size: p.Size, SHA256: sum}, nil
}
