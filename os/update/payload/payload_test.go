package payload

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func build(t *testing.T) ([]byte, ed25519.PublicKey) {
	t.Helper()
	skPEM, pkPEM, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	sk, err := ParsePrivateKey(skPEM)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := ParsePublicKey(pkPEM)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var in []Input
	for role, content := range map[string]string{RoleUsr: "usr image", RoleKernel: "kernel"} {
		p := filepath.Join(dir, role)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		in = append(in, Input{Role: role, Path: p})
	}
	var b bytes.Buffer
	if _, err := Build(&b, "1.2.3", in, sk); err != nil {
		t.Fatal(err)
	}
	return b.Bytes(), pk
}

func TestVerifyGoodPayload(t *testing.T) {
	b, pk := build(t)
	m, err := Verify(bytes.NewReader(b), []ed25519.PublicKey{pk})
	if err != nil {
		t.Fatal(err)
	}
	if m.Version != "1.2.3" || len(m.Files) != 2 {
		t.Errorf("manifest %+v", m)
	}
	pm, err := PeekManifest(bytes.NewReader(b))
	if err != nil || pm.Version != "1.2.3" {
		t.Errorf("peek: %v %v", pm, err)
	}
}

func TestOtherKeyIsRefused(t *testing.T) {
	b, _ := build(t)
	other, _, _ := ed25519.GenerateKey(nil)
	if _, err := NewReader(bytes.NewReader(b), []ed25519.PublicKey{other}); !errors.Is(err, ErrUnsigned) {
		t.Errorf("other key: %v", err)
	}
}

func TestFlippedByteIsCaughtWhileStreaming(t *testing.T) {
	b, pk := build(t)
	i := bytes.Index(b, []byte("usr image"))
	b[i] ^= 1
	r, err := NewReader(bytes.NewReader(b), []ed25519.PublicKey{pk})
	if err != nil {
		t.Fatal(err) // the manifest is intact
	}
	var got error
	for got == nil {
		_, fr, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			got = err
			break
		}
		_, got = io.Copy(io.Discard, fr)
	}
	if !errors.Is(got, ErrCorrupt) {
		t.Errorf("flipped byte: %v", got)
	}
}

func TestTamperedManifestIsRefused(t *testing.T) {
	b, pk := build(t)
	i := bytes.Index(b, []byte(`"1.2.3"`))
	copy(b[i:], `"9.2.3"`)
	if _, err := NewReader(bytes.NewReader(b), []ed25519.PublicKey{pk}); !errors.Is(err, ErrUnsigned) {
		t.Errorf("tampered manifest: %v", err)
	}
}

func TestNotAPayload(t *testing.T) {
	_, pk, _ := GenerateKey()
	k, _ := ParsePublicKey(pk)
	if _, err := NewReader(bytes.NewReader([]byte("hello")), []ed25519.PublicKey{k}); err == nil {
		t.Error("accepted junk")
	}
}

func TestManifestValidate(t *testing.T) {
	good := File{Name: "usr.img", Role: RoleUsr, Size: 1, SHA256: string(bytes.Repeat([]byte("a"), 64))}
	k := File{Name: "vmlinuz", Role: RoleKernel, Size: 1, SHA256: good.SHA256}
	for name, m := range map[string]Manifest{
		"no kernel":   {Format: 1, Version: "1", Files: []File{good}},
		"bad version": {Format: 1, Version: "../x", Files: []File{good, k}},
		"bad name":    {Format: 1, Version: "1", Files: []File{{Name: "../usr", Role: RoleUsr, Size: 1, SHA256: good.SHA256}, k}},
		"two usr":     {Format: 1, Version: "1", Files: []File{good, k, good}},
		"format":      {Format: 2, Version: "1", Files: []File{good, k}},
	} {
		if err := m.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func writeTestFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o644) }
