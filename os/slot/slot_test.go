package slot

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// newDisk makes a real GPT image with sgdisk: an ESP, USR-A and USR-B.
func newDisk(t *testing.T, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath("sgdisk"); err != nil {
		t.Skip("SKIP: sgdisk is not installed (gdisk; scripts/install-deps)")
	}
	p := filepath.Join(t.TempDir(), "disk.raw")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, 8<<20); err != nil {
		t.Fatal(err)
	}
	base := []string{"-o", "-n", "1:2048:+1M", "-c", "1:EFI-SYSTEM", "-t", "1:ef00",
		"-n", "3:0:+1M", "-c", "3:USR-A", "-n", "4:0:+1M", "-c", "4:USR-B"}
	sgdisk(t, p, append(base, args...)...)
	return p
}

func sgdisk(t *testing.T, disk string, args ...string) string {
	t.Helper()
	out, err := exec.Command("sgdisk", append(args, disk)...).CombinedOutput()
	if err != nil {
		t.Fatalf("sgdisk %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestAttributeBits(t *testing.T) {
	s := Slot{Name: A, Priority: 2, Tries: 3, Successful: true}
	attr := s.Attributes(1) // the "required" bit stays
	if want := uint64(1) | 2<<48 | 3<<52 | 1<<56; attr != want {
		t.Fatalf("attributes %#x, want %#x", attr, want)
	}
	if got := FromAttributes(A, attr); got != s {
		t.Fatalf("read back %v, want %v", got, s)
	}
}

func TestReadsWhatSgdiskSet(t *testing.T) {
	// Container Linux's bits as sgdisk sets them: B has priority 1 (bit 48),
	// tries 2 (bit 53), successful (bit 56).
	p := newDisk(t, "-A", "4:set:48", "-A", "4:set:53", "-A", "4:set:56")
	d, err := Open(p, false)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	a, b := d.Slots()
	if want := (Slot{Name: A, Index: 3}); a != want {
		t.Errorf("A is %v, want %v", a, want)
	}
	if want := (Slot{Name: B, Index: 4, Priority: 1, Tries: 2, Successful: true}); b != want {
		t.Errorf("B is %v, want %v", b, want)
	}
}

func TestSetKeepsTheRestOfTheTable(t *testing.T) {
	p := newDisk(t, "-A", "3:set:0") // USR-A "required"
	before := sgdisk(t, p, "-p")
	d, err := Open(p, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Set(Slot{Name: A, Priority: 1, Successful: true}, Slot{Name: B, Priority: 2, Tries: 3}); err != nil {
		t.Fatal(err)
	}
	d.Close()
	if out := sgdisk(t, p, "-v"); !strings.Contains(out, "No problems found") {
		t.Fatalf("sgdisk -v after Set:\n%s", out)
	}
	if after := sgdisk(t, p, "-p"); after != before {
		t.Errorf("table changed beyond attributes:\n%s\nwas\n%s", after, before)
	}
	// sgdisk prints the attribute value as hex.
	if out := sgdisk(t, p, "-i", "3"); !strings.Contains(out, "Attribute flags: 0101000000000001") {
		t.Errorf("USR-A attributes:\n%s", out)
	}
	if out := sgdisk(t, p, "-i", "4"); !strings.Contains(out, "Attribute flags: 0032000000000000") {
		t.Errorf("USR-B attributes:\n%s", out)
	}
}

func TestOpenNamesWhatIsMissing(t *testing.T) {
	p := newDisk(t, "-c", "4:OEM")
	_, err := Open(p, false)
	if err == nil || !strings.Contains(err.Error(), "no partition named USR-B") {
		t.Fatalf("Open of a disk without USR-B: %v", err)
	}
	junk := filepath.Join(t.TempDir(), "junk")
	if err := os.WriteFile(junk, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(junk, false); err == nil {
		t.Fatal("Open of a disk without a GPT succeeded")
	}
}

func TestPick(t *testing.T) {
	good := func(n string, prio int) Slot { return Slot{Name: n, Priority: prio, Successful: true} }
	for _, c := range []struct {
		a, b Slot
		want string
	}{
		{good(A, 1), good(B, 2), B},
		{good(A, 2), good(B, 1), A},
		{good(A, 1), good(B, 1), A},
		{good(A, 1), Slot{Name: B, Priority: 2, Tries: 1}, B},
		{good(A, 1), Slot{Name: B, Priority: 2}, A}, // B's tries used up
		{Slot{Name: A, Priority: 2}, good(B, 1), B},
	} {
		got, ok := Pick(c.a, c.b)
		if !ok || got.Name != c.want {
			t.Errorf("Pick(%v, %v) = %v %v, want %s", c.a, c.b, got, ok, c.want)
		}
	}
	if _, ok := Pick(Slot{Name: A}, Slot{Name: B}); ok {
		t.Error("Pick found a bootable slot among none")
	}
}

func TestNextThenGood(t *testing.T) {
	a, b := Slot{Name: A, Priority: 1, Successful: true}, Slot{Name: B}
	a, b, err := NextState(a, b, B, 3)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := Pick(a, b); got.Name != B || b.Tries != 3 || b.Successful {
		t.Fatalf("after NextState(B, 3): %v, %v", a, b)
	}
	b.Tries = 0 // the loader used them all up without a good boot
	if got, _ := Pick(a, b); got.Name != A {
		t.Fatalf("after B's tries: pick %v, want A", got)
	}
	a, b, _ = GoodState(a, b, A)
	if got, _ := Pick(a, b); got.Name != A || a.Priority <= b.Priority {
		t.Fatalf("after A good: %v, %v", a, b)
	}
	if _, _, err := NextState(a, b, "C", 1); err == nil {
		t.Error("NextState accepted slot C")
	}
	if _, _, err := NextState(a, b, A, 16); err == nil {
		t.Error("NextState accepted 16 tries")
	}
}

func TestEnvRoundTrip(t *testing.T) {
	e := Env{"other": "x\\y\nz"}
	e.SetSlot(Slot{Name: A, Priority: 2, Tries: 0, Successful: true})
	e.SetSlot(Slot{Name: B, Priority: 1, Tries: 3})
	b, err := e.Format()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != EnvSize {
		t.Fatalf("block is %d bytes", len(b))
	}
	// grub-editenv is the loader's own reader of the format.
	if _, err := exec.LookPath("grub-editenv"); err == nil {
		p := filepath.Join(t.TempDir(), "grubenv")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("grub-editenv", p, "list").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "orbit_b_tries=3\n") {
			t.Fatalf("grub-editenv list: %v\n%s", err, out)
		}
		if out, err := exec.Command("grub-editenv", p, "set", "orbit_b_tries=2").CombinedOutput(); err != nil {
			t.Fatalf("grub-editenv set: %v\n%s", err, out)
		}
		if b, err = os.ReadFile(p); err != nil {
			t.Fatal(err)
		}
	}
	got, err := ParseEnv(b)
	if err != nil {
		t.Fatal(err)
	}
	if got["other"] != "x\\y\nz" {
		t.Errorf("other = %q", got["other"])
	}
	sb, err := got.Slot(B)
	if err != nil || sb.Priority != 1 || sb.Successful {
		t.Errorf("slot B from env: %v %v", sb, err)
	}
	if _, err := ParseEnv([]byte("junk")); err == nil {
		t.Error("ParseEnv accepted junk")
	}
}

func TestStoreMarkGoodTakesLoaderTries(t *testing.T) {
	p := newDisk(t)
	env := filepath.Join(t.TempDir(), "grubenv")
	e := Env{}
	e.SetSlot(Slot{Name: A, Priority: 1, Successful: true})
	e.SetSlot(Slot{Name: B})
	b, _ := e.Format()
	if err := os.WriteFile(env, b, 0o644); err != nil {
		t.Fatal(err)
	}
	st := Store{Disk: p, Env: env}
	if err := st.SetNext(B, 3); err != nil {
		t.Fatal(err)
	}
	// The loader counts a try down in its environment.
	e, _ = ReadEnvFile(env)
	e[envVar(B, "tries")] = "2"
	if err := WriteEnvFile(env, e); err != nil {
		t.Fatal(err)
	}
	if err := st.MarkGood(B); err != nil {
		t.Fatal(err)
	}
	a, bs, err := st.Read()
	if err != nil {
		t.Fatal(err)
	}
	la, lb, err := st.Loader()
	if err != nil {
		t.Fatal(err)
	}
	la.Index, lb.Index = a.Index, bs.Index
	if la != a || lb != bs {
		t.Errorf("GPT %v %v and loader %v %v disagree", a, bs, la, lb)
	}
	if !bs.Successful || bs.Tries != 0 || bs.Priority <= a.Priority {
		t.Errorf("after MarkGood(B): %v %v", a, bs)
	}
	if fi, _ := os.Stat(env); fi.Size() != EnvSize {
		t.Errorf("env block is %d bytes", fi.Size())
	}
}

func TestMarkGoodWritesNothingWhenGood(t *testing.T) {
	p := newDisk(t)
	env := filepath.Join(t.TempDir(), "grubenv")
	e := Env{}
	e.SetSlot(Slot{Name: A})
	e.SetSlot(Slot{Name: B})
	b, _ := e.Format()
	if err := os.WriteFile(env, b, 0o644); err != nil {
		t.Fatal(err)
	}
	st := Store{Disk: p, Env: env}
	if err := st.MarkGood(A); err != nil {
		t.Fatal(err)
	}
	// Writing the same bytes would still touch the files: set their times
	// back and see that they stay.
	past := time.Now().Add(-time.Hour).Truncate(time.Second)
	for _, f := range []string{p, env} {
		if err := os.Chtimes(f, past, past); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.MarkGood(A); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{p, env} {
		if fi, err := os.Stat(f); err != nil || !fi.ModTime().Equal(past) {
			t.Errorf("a second MarkGood of a good slot wrote %s", f)
		}
	}
}
