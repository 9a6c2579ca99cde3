package trust

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// newKey makes a signing key; EdDSA keeps generation fast.
func newKey(t *testing.T, who string) *openpgp.Entity {
	t.Helper()
	e, err := openpgp.NewEntity(who, "test", who+"@example.com", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func armoredPublic(t *testing.T, e *openpgp.Entity) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, openpgp.PublicKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Serialize(w); err != nil {
		t.Fatal(err)
	}
	w.Close()
	return buf.Bytes()
}

func sign(t *testing.T, e *openpgp.Entity, msg []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := openpgp.ArmoredDetachSign(&buf, e, bytes.NewReader(msg), nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

var image = []byte("pretend this is an ACI")

func TestSignatureByKeyTrustedForPrefixVerifies(t *testing.T) {
	s := Open(t.TempDir())
	k := newKey(t, "alice")
	if _, err := s.Add("example.com", armoredPublic(t, k)); err != nil {
		t.Fatal(err)
	}
	signer, err := s.Verify("example.com/app", bytes.NewReader(image), sign(t, k, image))
	if err != nil {
		t.Fatal(err)
	}
	if signer.PrimaryKey.KeyId != k.PrimaryKey.KeyId {
		t.Fatalf("signer %X, want %X", signer.PrimaryKey.KeyId, k.PrimaryKey.KeyId)
	}
}

func TestRootKeyIsTrustedForEveryName(t *testing.T) {
	s := Open(t.TempDir())
	k := newKey(t, "root")
	if _, err := s.Add("", armoredPublic(t, k)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify("anything.org/x", bytes.NewReader(image), sign(t, k, image)); err != nil {
		t.Fatal(err)
	}
}

func TestBinarySignatureAndBinaryKeyVerify(t *testing.T) {
	s := Open(t.TempDir())
	k := newKey(t, "alice")
	var key, sig bytes.Buffer
	if err := k.Serialize(&key); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Add("example.com/app", key.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := openpgp.DetachSign(&sig, k, bytes.NewReader(image), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify("example.com/app", bytes.NewReader(image), sig.Bytes()); err != nil {
		t.Fatal(err)
	}
}

func TestTamperedImageFailsVerification(t *testing.T) {
	s := Open(t.TempDir())
	k := newKey(t, "alice")
	if _, err := s.Add("example.com", armoredPublic(t, k)); err != nil {
		t.Fatal(err)
	}
	sig := sign(t, k, image)
	tampered := append([]byte("x"), image...)
	if _, err := s.Verify("example.com/app", bytes.NewReader(tampered), sig); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("err = %v, want ErrBadSignature", err)
	}
	if _, err := s.Verify("example.com/app", bytes.NewReader(image), []byte("not a signature")); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("garbage signature: err = %v, want ErrBadSignature", err)
	}
}

func TestSignatureByUntrustedKeyIsRefused(t *testing.T) {
	s := Open(t.TempDir())
	trusted, stranger := newKey(t, "alice"), newKey(t, "mallory")
	if _, err := s.Add("example.com", armoredPublic(t, trusted)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify("example.com/app", bytes.NewReader(image), sign(t, stranger, image)); !errors.Is(err, ErrUntrusted) {
		t.Fatalf("err = %v, want ErrUntrusted", err)
	}
}

func TestKeyTrustedForAnotherPrefixIsRefused(t *testing.T) {
	s := Open(t.TempDir())
	k, other := newKey(t, "alice"), newKey(t, "bob")
	if _, err := s.Add("example.com/other", armoredPublic(t, k)); err != nil {
		t.Fatal(err)
	}
	// Some key is trusted for the name, just not the signer.
	if _, err := s.Add("example.com/app", armoredPublic(t, other)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify("example.com/app", bytes.NewReader(image), sign(t, k, image)); !errors.Is(err, ErrUntrusted) {
		t.Fatalf("err = %v, want ErrUntrusted", err)
	}
	// Prefixes match whole components: example.com/app is not a prefix of
	// example.com/application.
	if _, err := s.Verify("example.com/application", bytes.NewReader(image), sign(t, other, image)); !errors.Is(err, ErrNoKeys) {
		t.Fatalf("err = %v, want ErrNoKeys", err)
	}
}

func TestUnsignedImageIsRefused(t *testing.T) {
	s := Open(t.TempDir())
	if _, err := s.Verify("example.com/app", bytes.NewReader(image), nil); !errors.Is(err, ErrUnsigned) {
		t.Fatalf("err = %v, want ErrUnsigned", err)
	}
}

func TestTrustStoresPublicKeyUnderEscapedPrefixAndListsAndRemovesIt(t *testing.T) {
	dir := t.TempDir()
	s := Open(dir)
	k := newKey(t, "alice")
	// A key file with the private key: only the public part is kept.
	var priv bytes.Buffer
	w, _ := armor.Encode(&priv, openpgp.PrivateKeyType, nil)
	if err := k.SerializePrivate(w, nil); err != nil {
		t.Fatal(err)
	}
	w.Close()
	added, err := s.Add("example.com/app", priv.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(dir, "prefix.d", "example.com,app", added[0].Fingerprint)
	if added[0].Path != want {
		t.Fatalf("stored at %s, want %s", added[0].Path, want)
	}
	b, err := os.ReadFile(want)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("PRIVATE")) {
		t.Fatal("the stored key holds the private key")
	}
	if _, err := s.Add("", armoredPublic(t, k)); err != nil {
		t.Fatal(err)
	}
	keys, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0].Prefix != "" || keys[1].Prefix != "example.com/app" {
		t.Fatalf("List = %+v", keys)
	}
	removed, err := s.Remove(added[0].Fingerprint)
	if err != nil || len(removed) != 2 {
		t.Fatalf("Remove = %v, %v", removed, err)
	}
	if keys, _ := s.List(); len(keys) != 0 {
		t.Fatalf("after Remove, List = %+v", keys)
	}
}

func TestPrefixThatEscapesIsRefused(t *testing.T) {
	s := Open(t.TempDir())
	k := newKey(t, "alice")
	for _, p := range []string{"../etc", "example.com/../..", "/abs", "Example.com"} {
		if _, err := s.Add(p, armoredPublic(t, k)); err == nil {
			t.Errorf("Add(%q) succeeded", p)
		}
	}
}
