package aci

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"testing"
)

// FuzzRead feeds arbitrary archives to Read: it must refuse or accept
// without panicking, and leave no layer file behind when it refuses.
func FuzzRead(f *testing.F) {
	m := file("manifest", manifestJSON)
	f.Add(makeTar(f, m, dir("rootfs/"), file("rootfs/bin/app", "x")))
	f.Add(makeTar(f, m, file("rootfs/../x", "x")))
	f.Add(gzipped(makeTar(f, m, file("rootfs/a", "a"))))
	f.Add([]byte("BZh9"))
	f.Fuzz(func(t *testing.T, b []byte) {
		tmp := t.TempDir()
		a, err := Read(context.Background(), bytes.NewReader(b), tmp)
		if err == nil {
			a.Close()
			return
		}
		if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
			t.Fatalf("refused archive left %v", ents)
		}
	})
}

// bzip2 has no writer in Go's standard library; the bzip2 tool makes the
// test archive when it is installed.
func TestBzip2ACIIsRead(t *testing.T) {
	bz, err := exec.LookPath("bzip2")
	if err != nil {
		t.Skip("SKIP: no bzip2 tool to make a bzip2 archive")
	}
	cmd := exec.Command(bz, "-c")
	cmd.Stdin = bytes.NewReader(goodACI(t))
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	a, err := Read(context.Background(), bytes.NewReader(out), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if a.Manifest.Name != "example.com/app" {
		t.Fatalf("manifest name %s", a.Manifest.Name)
	}
}
