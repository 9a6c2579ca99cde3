// Command orbit-vm builds the VM test harness's image and boots it by hand.
//
//	orbit-vm image [flags]   build (or find cached) the image, print its paths
//	orbit-vm boot [flags]    boot it with the console on this terminal
//
// The console logs in as root by itself; power off with `systemctl poweroff`
// or leave QEMU with Ctrl-A x. A boot never changes the cached image: it
// runs on a qcow2 overlay that is removed afterwards.
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

	"github.com/orbit-pods/orbit/os/vm"
)

func main() {
	if len(os.Args) < 2 || (os.Args[1] != "image" && os.Args[1] != "boot") {
		fmt.Fprintln(os.Stderr, "usage: orbit-vm image|boot [-cache DIR] [-build DIR] [-file GUEST=HOST]...")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	cache := fs.String("cache", "/var/cache/orbit-vm", "where the rootfs tarball and images are cached")
	build := fs.String("build", "build", "orbit's build directory (bin/, libexec/)")
	mem := fs.Int("memory", 1024, "guest memory in MB")
	files := map[string]string{}
	fs.Func("file", "GUEST=HOST: copy a host file into the image (repeatable)", func(s string) error {
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
	logf := func(f string, a ...any) { fmt.Fprintf(os.Stderr, "orbit-vm: "+f+"\n", a...) }
	buildDir, _ := filepath.Abs(*build)
	start := time.Now()
	img, built, err := vm.BuildImage(ctx, vm.ImageSpec{Rootfs: vm.RootfsSpec{CacheDir: *cache}, Build: buildDir, Files: files}, logf)
	if err != nil {
		fmt.Fprintln(os.Stderr, "orbit-vm:", err)
		os.Exit(1)
	}
	logf("image ready in %s (built: %v)", time.Since(start).Round(time.Millisecond), built)
	if os.Args[1] == "image" {
		fmt.Printf("disk=%s\nkernel=%s\ninitramfs=%s\n", img.Disk, img.Kernel, img.Initramfs)
		return
	}
	if err := boot(img, *mem); err != nil {
		fmt.Fprintln(os.Stderr, "orbit-vm:", err)
		os.Exit(1)
	}
}

func boot(img *vm.Image, mem int) error {
	dir, err := os.MkdirTemp("", "orbit-vm-boot-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	overlay := filepath.Join(dir, "disk.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", img.Disk, overlay).CombinedOutput(); err != nil {
		return fmt.Errorf("overlay on %s: %w: %s", img.Disk, err, out)
	}
	c := exec.Command("qemu-system-x86_64", vm.InteractiveArgs(img, overlay, vm.BootOptions{MemoryMB: mem})...)
	c.Stdin, c.Stdout, c.Stderr = os.Stdin, os.Stdout, os.Stderr
	// QEMU takes Ctrl-C as input for the guest; the harness must not die of it.
	signal.Ignore(os.Interrupt)
	return c.Run()
}
