//go:build functional

package functional

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testPKI writes a CA, a server certificate for 127.0.0.1 and a client
// certificate it signed, as PEM files in dir; a second CA that signed
// nothing goes to other-ca.pem.
func testPKI(t *testing.T, dir string) {
	t.Helper()
	write := func(name string, typ string, der []byte) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	serial := int64(1)
	cert := func(tmpl, parent *x509.Certificate, key, parentKey *ecdsa.PrivateKey) []byte {
		t.Helper()
		serial++
		tmpl.SerialNumber = big.NewInt(serial)
		tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	caTmpl := &x509.Certificate{Subject: pkix.Name{CommonName: "orbit test CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caKey := newKey()
	caDER := cert(caTmpl, caTmpl, caKey, caKey)
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	write("ca.pem", "CERTIFICATE", caDER)
	for _, c := range []struct {
		name  string
		usage x509.ExtKeyUsage
	}{{"server", x509.ExtKeyUsageServerAuth}, {"client", x509.ExtKeyUsageClientAuth}} {
		k := newKey()
		tmpl := &x509.Certificate{Subject: pkix.Name{CommonName: c.name}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{c.usage}}
		write(c.name+".pem", "CERTIFICATE", cert(tmpl, ca, k, caKey))
		kd, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		write(c.name+"-key.pem", "EC PRIVATE KEY", kd)
	}
	otherKey := newKey()
	otherTmpl := &x509.Certificate{Subject: pkix.Name{CommonName: "another CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	write("other-ca.pem", "CERTIFICATE", cert(otherTmpl, otherTmpl, otherKey, otherKey))
}

// TestRebootManagerOverTLS runs the reboot manager and its CLI against an
// etcd that serves TLS only and wants client certificates
// (LOCKSMITHD_ETCD_CAFILE, _CERTFILE, _KEYFILE as locksmith had them): the
// agent takes the semaphore and reboots, the CLI sees and frees it, and
// a client without a certificate, or trusting another CA, is refused with
// the reason.
func TestRebootManagerOverTLS(t *testing.T) {
	etcdBin, err := exec.LookPath("etcd")
	if err != nil {
		t.Fatalf("the reboot tests need Debian's etcd-server (scripts/install-deps): %v", err)
	}
	dir := t.TempDir()
	testPKI(t, dir)
	pem := func(n string) string { return filepath.Join(dir, n) }
	client, peer := freePort(t), freePort(t)
	endpoint := fmt.Sprintf("https://127.0.0.1:%d", client)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peer)
	log, err := os.Create(pem("etcd.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	etcd := exec.Command(etcdBin, "--name", "tls", "--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", endpoint, "--advertise-client-urls", endpoint,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL, "--initial-cluster", "tls="+peerURL,
		"--cert-file", pem("server.pem"), "--key-file", pem("server-key.pem"), "--trusted-ca-file", pem("ca.pem"), "--client-cert-auth")
	etcd.Stdout, etcd.Stderr = log, log
	if err := etcd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = etcd.Process.Kill(); _ = etcd.Wait() })

	ctl := func(tlsFlags []string, args ...string) (string, error) {
		a := append([]string{"--endpoint", endpoint}, tlsFlags...)
		out, err := exec.Command(filepath.Join(build, "bin", "orbit-rebootctl"), append(a, args...)...).CombinedOutput()
		return string(out), err
	}
	good := []string{"--etcd-cafile", pem("ca.pem"), "--etcd-certfile", pem("client.pem"), "--etcd-keyfile", pem("client-key.pem")}
	rbWaitFor(t, "etcd to serve TLS", func() bool { _, err := ctl(good, "status"); return err == nil })

	// The agent, configured by update.conf, takes the slot and reboots.
	m := &machine{id: "7c1e0a4b2d8f4e6a9b1c2d3e4f5a6b7c", dir: t.TempDir()}
	m.conf = filepath.Join(m.dir, "update.conf")
	if err := os.WriteFile(m.conf, []byte("REBOOT_STRATEGY=etcd-lock\nLOCKSMITHD_ENDPOINT="+endpoint+"\n"+
		"LOCKSMITHD_ETCD_CAFILE="+pem("ca.pem")+"\nLOCKSMITHD_ETCD_CERTFILE="+pem("client.pem")+"\nLOCKSMITHD_ETCD_KEYFILE="+pem("client-key.pem")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mark := filepath.Join(m.dir, "rebooted")
	m.requireReboot(t)
	m.start(t, "touch "+mark+"; exec sleep 600")
	deadline := time.Now().Add(time.Minute)
	for _, err := os.Stat(mark); err != nil; _, err = os.Stat(mark) {
		if time.Now().After(deadline) {
			t.Fatalf("the agent did not reboot under the semaphore within a minute:\n%s", m.log())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if out, err := ctl(good, "status"); err != nil || !strings.Contains(out, m.id) {
		t.Errorf("status over TLS: %v\n%s\nagent:\n%s", err, out, m.log())
	}
	if out, err := ctl(good, "unlock", m.id); err != nil {
		t.Errorf("unlock over TLS: %v\n%s", err, out)
	}
	if out, err := ctl(good, "status"); err != nil || strings.Contains(out, m.id) || !strings.Contains(out, "Available: 1") {
		t.Errorf("status after unlock: %v\n%s", err, out)
	}

	// Refusals name why.
	if out, err := ctl([]string{"--etcd-cafile", pem("ca.pem")}, "status"); err == nil {
		t.Errorf("status without a client certificate succeeded:\n%s", out)
	} else {
		t.Logf("without a client certificate: %s", strings.TrimSpace(out))
	}
	if out, err := ctl([]string{"--etcd-cafile", pem("other-ca.pem"), "--etcd-certfile", pem("client.pem"), "--etcd-keyfile", pem("client-key.pem")}, "status"); err == nil {
		t.Errorf("status trusting another CA succeeded:\n%s", out)
	} else if !strings.Contains(out, "certificate") {
		t.Errorf("trusting another CA: %q, want a certificate error", out)
	}
	if out, err := ctl([]string{"--etcd-certfile", pem("client.pem")}, "status"); err == nil || !strings.Contains(out, "go together") {
		t.Errorf("a certificate without its key: %v %q", err, out)
	}
}
