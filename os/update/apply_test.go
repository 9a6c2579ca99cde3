package update

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/orbit-pods/orbit/os/slot"
	"github.com/orbit-pods/orbit/os/update/payload"
	"github.com/orbit-pods/orbit/os/update/testdisk"
)

type fixture struct {
	m    *testdisk.Machine
	keys []ed25519.PublicKey
	sk   ed25519.PrivateKey
	dir  string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	if _, err := exec.LookPath("sgdisk"); err != nil {
		t.Skip("SKIP: sgdisk is not installed (gdisk; scripts/install-deps)")
	}
	dir := t.TempDir()
	m, err := testdisk.New(filepath.Join(dir, "machine"))
	if err != nil {
		t.Fatal(err)
	}
	skPEM, err := testdisk.Keys(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := payload.LoadPublicKeys(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	sk, err := payload.ParsePrivateKey(skPEM)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{m: m, keys: keys, sk: sk, dir: dir}
}

func (f *fixture) target(active string) *Target {
	return &Target{Slots: f.m.Store(), Active: active, ESP: f.m.ESP, Keys: f.keys}
}

// payload builds a signed payload with a /usr image of usrSize bytes.
func (f *fixture) payload(t *testing.T, version string, usrSize int) ([]byte, []payload.Input) {
	t.Helper()
	in, err := testdisk.Inputs(f.dir, version, usrSize)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if _, err := payload.Build(&b, version, in, f.sk); err != nil {
		t.Fatal(err)
	}
	return b.Bytes(), in
}

func TestApplyWritesThePassiveSlotThenSwitches(t *testing.T) {
	f := newFixture(t)
	p, in := f.payload(t, "2.0.0", 1<<20)
	sum := sha256.Sum256(p)
	m, err := f.target(slot.A).Apply(bytes.NewReader(p), sum[:])
	if err != nil {
		t.Fatal(err)
	}
	if m.Version != "2.0.0" {
		t.Errorf("version %s", m.Version)
	}
	usr, _ := os.ReadFile(in[0].Path)
	got, err := f.m.SlotBytes(slot.B, int64(len(usr)))
	if err != nil || !bytes.Equal(got, usr) {
		t.Errorf("slot B does not hold the /usr image (%v)", err)
	}
	a, _ := f.m.SlotBytes(slot.A, 4096)
	if !bytes.Equal(a, bytes.Repeat([]byte{0xAA}, 4096)) {
		t.Error("the running slot A was written")
	}
	for i, name := range []string{"", "vmlinuz", "initramfs.img"} {
		if i == 0 {
			continue
		}
		want, _ := os.ReadFile(in[i].Path)
		got, err := os.ReadFile(filepath.Join(f.m.ESP, "B", name))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("ESP orbit/b/%s: %v", name, err)
		}
	}
	sa, sb, _ := f.m.Store().Read()
	la, lb, _ := f.m.Store().Loader()
	if sb.Priority <= sa.Priority || sb.Tries != 3 || sb.Successful || !sa.Successful {
		t.Errorf("GPT after apply: %v / %v", sa, sb)
	}
	if pick, _ := slot.Pick(la, lb); pick.Name != slot.B {
		t.Errorf("the loader would boot %v", pick)
	}
	if partials, _ := filepath.Glob(filepath.Join(f.m.ESP, "B", "*"+partialSuffix)); len(partials) != 0 {
		t.Errorf("partial files left: %v", partials)
	}
}

// refused applies a payload that must fail with want, and checks that the
// slot metadata is byte for byte what it was and no kernel file is left.
func refused(t *testing.T, f *fixture, p, sum []byte, want error) {
	t.Helper()
	before, err := f.m.SlotTable()
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.target(slot.A).Apply(bytes.NewReader(p), sum)
	if !errors.Is(err, want) {
		t.Fatalf("apply: %v, want %v", err, want)
	}
	t.Logf("refused as expected: %v", err)
	after, _ := f.m.SlotTable()
	if !bytes.Equal(before, after) {
		t.Error("the slot table changed")
	}
	left, _ := filepath.Glob(filepath.Join(f.m.ESP, "B", "*"))
	if len(left) != 0 {
		t.Errorf("kernel files left on the ESP: %v", left)
	}
}

func TestCorruptPayloadIsRefusedAndTheSlotTableUnchanged(t *testing.T) {
	f := newFixture(t)
	p, _ := f.payload(t, "2.0.0", 1<<20)
	p[len(p)/2] ^= 0xff // inside the /usr image
	sum := sha256.Sum256(p)
	refused(t, f, p, sum[:], payload.ErrCorrupt)
}

func TestCorruptKernelIsRefused(t *testing.T) {
	f := newFixture(t)
	p, _ := f.payload(t, "2.0.0", 1<<20)
	p[len(p)-40<<10] ^= 0xff // inside the initrd, after the kernel
	refused(t, f, p, nil, payload.ErrCorrupt)
}

func TestWrongOmahaHashIsRefused(t *testing.T) {
	f := newFixture(t)
	p, _ := f.payload(t, "2.0.0", 1<<20)
	sum := sha256.Sum256([]byte("another payload"))
	refused(t, f, p, sum[:], payload.ErrCorrupt)
}

func TestUnsignedPayloadIsRefused(t *testing.T) {
	f := newFixture(t)
	_, otherPEM, _ := payload.GenerateKey()
	other, _ := payload.ParsePublicKey(otherPEM)
	p, _ := f.payload(t, "2.0.0", 1<<20)
	f.keys = []ed25519.PublicKey{other}
	refused(t, f, p, nil, payload.ErrUnsigned)
}

func TestTooLargeImageIsRefusedBeforeWriting(t *testing.T) {
	f := newFixture(t)
	p, _ := f.payload(t, "2.0.0", testdisk.SlotSize+512)
	refused(t, f, p, nil, ErrNoSpace)
	b, _ := f.m.SlotBytes(slot.B, 512)
	if !bytes.Equal(b, make([]byte, 512)) {
		t.Error("slot B was written")
	}
}

func TestApplyFromSlotBWritesSlotA(t *testing.T) {
	f := newFixture(t)
	p, in := f.payload(t, "2.0.0", 4096)
	if _, err := f.target(slot.B).Apply(bytes.NewReader(p), nil); err != nil {
		t.Fatal(err)
	}
	usr, _ := os.ReadFile(in[0].Path)
	if got, _ := f.m.SlotBytes(slot.A, 4096); !bytes.Equal(got, usr) {
		t.Error("slot A does not hold the image")
	}
}

func TestStalePartialKernelIsRemoved(t *testing.T) {
	f := newFixture(t)
	kdir := filepath.Join(f.m.ESP, "B")
	os.MkdirAll(kdir, 0o755)
	os.WriteFile(filepath.Join(kdir, "vmlinuz"+partialSuffix), []byte("half"), 0o644)
	p, _ := f.payload(t, "2.0.0", 4096)
	p[len(p)-40<<10] ^= 0xff
	if _, err := f.target(slot.A).Apply(bytes.NewReader(p), nil); err == nil {
		t.Fatal("corrupt payload applied")
	}
	if _, err := os.Stat(filepath.Join(kdir, "vmlinuz"+partialSuffix)); !os.IsNotExist(err) {
		t.Errorf("partial kernel still there: %v", err)
	}
}
