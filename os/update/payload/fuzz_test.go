package payload

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"
)

// FuzzRead feeds arbitrary bytes to the payload reader: it must refuse
// them with an error, never panic, and never accept a payload whose
// signature does not check.
func FuzzRead(f *testing.F) {
	b, pk := buildFuzzSeed(f)
	f.Add(b)
	f.Add(b[:len(b)/2])
	f.Add([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Verify(bytes.NewReader(data), []ed25519.PublicKey{pk})
		if err == nil && !bytes.Equal(data, b) {
			// Only the seed (or a byte-identical re-encoding of it) verifies.
			if m == nil || m.Version != "1.2.3" {
				t.Fatalf("accepted a payload that is not the signed one: %+v", m)
			}
		}
		if err != nil && errors.Is(err, ErrUnsigned) && m != nil {
			t.Fatal("manifest returned with an error")
		}
	})
}

func buildFuzzSeed(f *testing.F) ([]byte, ed25519.PublicKey) {
	skPEM, pkPEM, err := GenerateKey()
	if err != nil {
		f.Fatal(err)
	}
	sk, _ := ParsePrivateKey(skPEM)
	pk, _ := ParsePublicKey(pkPEM)
	dir := f.TempDir()
	in := []Input{{Role: RoleUsr, Path: dir + "/usr"}, {Role: RoleKernel, Path: dir + "/k"}}
	for _, i := range in {
		if err := writeTestFile(i.Path, i.Role); err != nil {
			f.Fatal(err)
		}
	}
	var b bytes.Buffer
	if _, err := Build(&b, "1.2.3", in, sk); err != nil {
		f.Fatal(err)
	}
	return b.Bytes(), pk
}
