//go:build functional

package functional

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// tokenServer is a Docker registry token service: it checks basic auth
// and answers with a JWT the registry verifies against its certificate.
type tokenServer struct {
	key    *ecdsa.PrivateKey
	cert   []byte // DER
	issued int
}

func newTokenServer(t *testing.T, certFile string) *tokenServer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "orbit-test-token-issuer"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return &tokenServer{key: key, cert: der}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func (ts *tokenServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	user, pass, ok := r.BasicAuth()
	if !ok || user != "alice" || pass != "s3cret" {
		http.Error(w, "bad credentials", http.StatusUnauthorized)
		return
	}
	type access struct {
		Type    string   `json:"type"`
		Name    string   `json:"name"`
		Actions []string `json:"actions"`
	}
	var grants []access
	for _, scope := range r.URL.Query()["scope"] {
		parts := strings.Split(scope, ":")
		if len(parts) == 3 {
			grants = append(grants, access{parts[0], parts[1], strings.Split(parts[2], ",")})
		}
	}
	now := time.Now()
	hdr, _ := json.Marshal(map[string]any{"typ": "JWT", "alg": "ES256", "x5c": []string{base64.StdEncoding.EncodeToString(ts.cert)}})
	claims, _ := json.Marshal(map[string]any{
		"iss": "orbit-test-issuer", "sub": user, "aud": r.URL.Query().Get("service"),
		"exp": now.Add(5 * time.Minute).Unix(), "nbf": now.Add(-time.Minute).Unix(), "iat": now.Unix(),
		"jti": fmt.Sprint(now.UnixNano()), "access": grants,
	})
	signing := b64(hdr) + "." + b64(claims)
	digest := sha256Sum([]byte(signing))
	rs, ss, err := ecdsa.Sign(rand.Reader, ts.key, digest[:])
	if err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	sig := make([]byte, 64)
	rs.FillBytes(sig[:32])
	ss.FillBytes(sig[32:])
	ts.issued++
	tok := signing + "." + b64(sig)
	json.NewEncoder(w).Encode(map[string]any{"token": tok, "access_token": tok, "expires_in": 300})
}

// A registry with token auth (the Docker token protocol, as Docker Hub and
// most registries speak it): orbit gets a token with the auth file's
// credentials and fetches.
func TestFetchFromRegistryWithTokenAuth(t *testing.T) {
	e := newEnv(t)
	certFile := filepath.Join(e.root, "token.pem")
	ts := newTokenServer(t, certFile)
	// The token service shares the registry's address, behind a front as
	// it often is: go-containerregistry refuses a realm on another private
	// address (an SSRF guard), and everything here is on loopback.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	realm := "http://" + addr + "/token"
	upstream := startRegistryWith(t, fmt.Sprintf("auth:\n  token:\n    realm: %s\n    service: orbit-test\n    issuer: orbit-test-issuer\n    rootcertbundle: %s\n", realm, certFile))
	mux := http.NewServeMux()
	mux.Handle("/token", ts)
	mux.Handle("/", httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: upstream}))
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	skopeoCopy(t, "oci-archive:"+filepath.Join(build, "demo.oci.tar"), "docker://"+addr+"/private/demo:1", "--dest-creds=alice:s3cret")

	authFile := filepath.Join(e.root, "auth.json")
	os.WriteFile(authFile, []byte(fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, addr, base64.StdEncoding.EncodeToString([]byte("alice:s3cret")))), 0o600)
	before := ts.issued
	e.mustOrbit("--insecure-options=http", "--auth-file="+authFile, "fetch", "docker://"+addr+"/private/demo:1")
	if ts.issued == before {
		t.Fatal("orbit fetched without asking the token service")
	}
	anon := filepath.Join(e.root, "anon.json")
	os.WriteFile(anon, []byte(`{"auths":{}}`), 0o600)
	if r := e.orbit("--insecure-options=http", "--auth-file="+anon, "fetch", "docker://"+addr+"/private/demo:1"); r.code == 0 {
		t.Fatal("fetched from a token-protected registry without credentials")
	}
	e.runsEcho(addr + "/private/demo:1")
}

func sha256Sum(b []byte) [32]byte { return sha256.Sum256(b) }
