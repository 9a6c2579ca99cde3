// Command orbit-os builds the Orbit OS disk image and boots it by hand.
//
//	orbit-os image [flags]   build (or find cached) the image, print its path and /usr's root hash
//	orbit-os boot [flags]    boot it under QEMU (UEFI, OVMF) with the console on this terminal
//
// The console's login is root with the development password (docs/os.md).
// A boot runs on a qcow2 overlay that is removed afterwards, so the cached
// image never changes; Ctrl-A x leaves QEMU.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/orbit-pods/orbit/os/diskimage"
	"github.com/orbit-pods/orbit/os/vm"
)

func main() {
	if len(os.Args) < 2 || (os.Args[1] != "image" && os.Args[1] != "boot") {
		fmt.Fprintln(os.Stderr, "usage: orbit-os image|boot [-cache DIR] [-build DIR] [-version V] [-disk-size MB] [-file GUEST=HOST]...")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	cache := fs.String("cache", "/var/cache/orbit-os", "where the debootstrap tarball and images are cached")
	build := fs.String("build", "build", "orbit's build directory")
	out := fs.String("o", "", "image: also copy the image here (sparse)")
	mem := fs.Int("memory", 1024, "boot: guest memory in MB")
	version := fs.String("version", diskimage.DefaultVersion, "image: the OS version (VERSION_ID), what the update agent reports")
	diskSize := fs.Int64("disk-size", 4096, "boot: the machine's disk in MB (ROOT grows to fill it)")
	files := map[string]string{}
	fs.Func("file", "GUEST=HOST: copy a host file into /usr or /etc of the image (repeatable)", func(s string) error {
		for i := 0; i < len(s); i++ {
			if s[i] == '=' {
				files[s[:i]] = s[i+1:]
				return nil
			}
		}
		return fmt.Errorf("want GUEST=HOST, got %q", s)
	})
	_ = fs.Parse(os.Args[2:])

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logf := func(f string, a ...any) { fmt.Fprintf(os.Stderr, "orbit-os: "+f+"\n", a...) }
	buildDir, _ := filepath.Abs(*build)
	start := time.Now()
	img, built, err := diskimage.Build(ctx, diskimage.Spec{CacheDir: *cache, Build: buildDir, Files: files, Version: *version}, logf)
	if err != nil {
		fmt.Fprintln(os.Stderr, "orbit-os:", err)
		os.Exit(1)
	}
	logf("image ready in %s (built: %v)", time.Since(start).Round(time.Millisecond), built)
	if os.Args[1] == "image" {
		if *out != "" {
			if b, err := exec.Command("cp", "--sparse=always", img.Disk, *out).CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "orbit-os: copy to %s: %v: %s\n", *out, err, b)
				os.Exit(1)
			}
		}
		fmt.Printf("disk=%s\nusrhash=%s\nsize=%d\n", img.Disk, img.UsrHash, img.SizeBytes)
		return
	}
	stop()
	if err := boot(img, *mem, *diskSize); err != nil {
		fmt.Fprintln(os.Stderr, "orbit-os:", err)
		os.Exit(1)
	}
}

func boot(img *diskimage.Image, mem int, sizeMB int64) error {
	dir, err := os.MkdirTemp("", "orbit-os-boot-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	overlay := filepath.Join(dir, "disk.qcow2")
	if err := vm.Overlay(context.Background(), img.Disk, overlay, sizeMB); err != nil {
		return err
	}
	o := diskimage.BootOptions()
	o.MemoryMB = mem
	vars := filepath.Join(dir, "vars.fd")
	if err := vm.CopyFile(o.FirmwareVars, vars); err != nil {
		return err
	}
	o.FirmwareVars = vars
	c := exec.Command("qemu-system-x86_64", vm.InteractiveArgs(img.VMImage(), overlay, o)...)
	c.Stdin, c.Stdout, c.Stderr = os.Stdin, os.Stdout, os.Stderr
	// QEMU takes Ctrl-C as input for the guest; this process must not die
	// of it. SIGTERM ends QEMU, and the overlay is still removed.
	signal.Ignore(os.Interrupt)
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	defer signal.Stop(term)
	if err := c.Start(); err != nil {
		return err
	}
	go func() {
		if _, ok := <-term; ok {
			_ = c.Process.Kill()
		}
	}()
	return c.Wait()
}
