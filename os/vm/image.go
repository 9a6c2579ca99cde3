package vm

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// ImageSpec says what goes into a bootable image.
type ImageSpec struct {
	Rootfs RootfsSpec // its CacheDir holds the images too
	// Build is orbit's build directory (bin/, libexec/, optionally cni/):
	// installed as `make install` would, under /usr/local.
	Build string
	// Files are copied into the image: guest path to host path.
	Files map[string]string
	// Kernel is the host's Debian kernel to boot, /boot/vmlinuz-RELEASE;
	// the newest there when empty. Its modules come from /lib/modules/RELEASE.
	Kernel string
	SizeMB int64 // of the ext4 filesystem; 2048 when zero
}

// Image is a built, cached image: the raw ext4 root, the kernel and the
// initramfs that boot it. Machines never write to it.
type Image struct {
	Disk, Kernel, Initramfs string
}

// imageRecipe changes when the harness's own guest files change shape.
const imageRecipe = "1"

// BuildImage returns the image for spec, making it (and the rootfs under it)
// only when the cache has none for these inputs.
func BuildImage(ctx context.Context, spec ImageSpec, log func(string, ...any)) (img *Image, built bool, err error) {
	if log == nil {
		log = func(string, ...any) {}
	}
	kernel := spec.Kernel
	if kernel == "" {
		if kernel, err = newestKernel(); err != nil {
			return nil, false, err
		}
	}
	release := strings.TrimPrefix(filepath.Base(kernel), "vmlinuz-")
	modDir := filepath.Join("/lib/modules", release)
	tarball, _, err := Rootfs(ctx, spec.Rootfs, log)
	if err != nil {
		return nil, false, err
	}
	files, err := guestFiles(spec)
	if err != nil {
		return nil, false, err
	}
	size := spec.SizeMB
	if size == 0 {
		size = 2048
	}
	h, sum := newHash()
	h.add("image", imageRecipe, filepath.Base(tarball), release, fmt.Sprint(size), initScript)
	dsts := make([]string, 0, len(files))
	for d := range files {
		dsts = append(dsts, d)
	}
	sort.Strings(dsts)
	for _, d := range dsts {
		h.add(d)
		if err := h.addFile(files[d]); err != nil {
			return nil, false, fmt.Errorf("image: %w", err)
		}
	}
	for _, gf := range guestConfig {
		h.add(gf.path, gf.mode.String(), gf.content)
	}
	key := sum()
	cache := spec.Rootfs.CacheDir
	img = &Image{
		Disk:      filepath.Join(cache, "image-"+key+".raw"),
		Kernel:    kernel,
		Initramfs: filepath.Join(cache, "initramfs-"+release+"-"+key+".img"),
	}
	if exists(img.Disk) && exists(img.Initramfs) {
		now := time.Now()
		_ = os.Chtimes(img.Disk, now, now)
		_ = os.Chtimes(img.Initramfs, now, now)
		return img, false, nil
	}

	dir, err := os.MkdirTemp(cache, "image-")
	if err != nil {
		return nil, false, fmt.Errorf("image: %w", err)
	}
	defer os.RemoveAll(dir)
	root := filepath.Join(dir, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		return nil, false, fmt.Errorf("image: %w", err)
	}
	if out, err := exec.CommandContext(ctx, "tar", "--numeric-owner", "--xattrs", "-C", root, "-xf", tarball).CombinedOutput(); err != nil {
		return nil, false, fmt.Errorf("image: unpack %s: %w\n%s", tarball, err, out)
	}
	for _, gf := range guestConfig {
		if err := writeGuestFile(root, gf); err != nil {
			return nil, false, fmt.Errorf("image: %w", err)
		}
	}
	for _, d := range dsts {
		if err := copyFile(files[d], filepath.Join(root, d)); err != nil {
			return nil, false, fmt.Errorf("image: %w", err)
		}
	}
	if err := copyModules(ctx, modDir, filepath.Join(root, "lib/modules", release)); err != nil {
		return nil, false, fmt.Errorf("image: %w", err)
	}

	tmp := filepath.Join(dir, "disk.raw")
	if err := os.WriteFile(tmp, nil, 0o644); err != nil {
		return nil, false, fmt.Errorf("image: %w", err)
	}
	if err := os.Truncate(tmp, size<<20); err != nil {
		return nil, false, fmt.Errorf("image: %w", err)
	}
	// mkfs.ext4 -d fills the filesystem from the directory: no loop device,
	// no mount, and owners and modes come across as they are.
	if out, err := exec.CommandContext(ctx, "mkfs.ext4", "-q", "-F", "-L", "orbit-vm", "-d", root, tmp).CombinedOutput(); err != nil {
		return nil, false, fmt.Errorf("image: mkfs.ext4 -d %s: %w\n%s", root, err, out)
	}
	itmp := filepath.Join(dir, "initramfs.img")
	if err := writeInitramfs(itmp, modDir, "/bin/busybox"); err != nil {
		return nil, false, err
	}
	if err := os.Rename(itmp, img.Initramfs); err != nil {
		return nil, false, fmt.Errorf("image: %w", err)
	}
	if err := os.Rename(tmp, img.Disk); err != nil {
		return nil, false, fmt.Errorf("image: %w", err)
	}
	log("image %s built", img.Disk)
	pruneImages(cache, img)
	return img, true, nil
}

// pruneAge is how long an image unused stays in the cache. Each is hundreds
// of MB and every build of orbit makes a new one, but another build sharing
// the cache (another worktree) may be about to boot the one it just got.
const pruneAge = time.Hour

// pruneImages removes the images no build has asked for in pruneAge; a
// cache hit touches its image. A machine still running on one keeps its
// open file.
func pruneImages(cache string, keep *Image) {
	for _, g := range []string{"image-*.raw", "initramfs-*.img"} {
		m, _ := filepath.Glob(filepath.Join(cache, g))
		for _, f := range m {
			fi, err := os.Stat(f)
			if err == nil && f != keep.Disk && f != keep.Initramfs && time.Since(fi.ModTime()) > pruneAge {
				_ = os.Remove(f)
			}
		}
	}
}

// guestFiles maps guest paths to host files: orbit's build, then spec.Files.
func guestFiles(spec ImageSpec) (map[string]string, error) {
	out := map[string]string{}
	if spec.Build != "" {
		// Every program of the build (orbit and the OS agents), so that
		// the shipped units can be checked against them.
		bins, err := filepath.Glob(filepath.Join(spec.Build, "bin", "*"))
		if err != nil {
			return nil, err
		}
		for _, f := range bins {
			out["/usr/local/bin/"+filepath.Base(f)] = f
		}
		libexec, err := filepath.Glob(filepath.Join(spec.Build, "libexec", "*"))
		if err != nil {
			return nil, err
		}
		cni, _ := filepath.Glob(filepath.Join(spec.Build, "cni", "*"))
		for _, f := range libexec {
			out["/usr/local/libexec/orbit/"+filepath.Base(f)] = f
		}
		for _, f := range cni {
			out["/usr/local/libexec/orbit/cni/"+filepath.Base(f)] = f
		}
		for _, f := range []string{"bin/orbit", "libexec/orbit-stage1", "libexec/orbit-pod-init"} {
			if !exists(filepath.Join(spec.Build, f)) {
				return nil, fmt.Errorf("image: orbit build %s has no %s (run make first)", spec.Build, f)
			}
		}
	}
	for d, s := range spec.Files {
		out[d] = s
	}
	return out, nil
}

// NewestKernel is the newest Debian kernel in the host's /boot.
func NewestKernel() (string, error) { return newestKernel() }

func newestKernel() (string, error) {
	m, _ := filepath.Glob("/boot/vmlinuz-*")
	if len(m) == 0 {
		return "", fmt.Errorf("image: no kernel in /boot (apt-get install linux-image-amd64)")
	}
	sort.Strings(m)
	return m[len(m)-1], nil
}

// ModuleDirs are the parts of a kernel's modules a pod host needs
// (filesystems, networking, virtio), relative to /lib/modules/RELEASE.
var ModuleDirs = []string{"kernel/fs", "kernel/net", "kernel/lib", "kernel/crypto", "kernel/arch",
	"kernel/drivers/virtio", "kernel/drivers/block", "kernel/drivers/char", "kernel/drivers/net"}

// copyModules copies the kernel modules a pod host needs rather than all
// of them, and indexes them with depmod.
func copyModules(ctx context.Context, src, dst string) error {
	return CopyModules(ctx, src, dst, ModuleDirs)
}

// CopyModules copies the subs of the modules in src (/lib/modules/RELEASE)
// to dst (ROOT/lib/modules/RELEASE) and indexes them with depmod -b ROOT.
func CopyModules(ctx context.Context, src, dst string, subs []string) error {
	for _, sub := range subs {
		if !exists(filepath.Join(src, sub)) {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dst, sub)), 0o755); err != nil {
			return err
		}
		if out, err := exec.CommandContext(ctx, "cp", "-a", filepath.Join(src, sub), filepath.Join(dst, sub)).CombinedOutput(); err != nil {
			return fmt.Errorf("copy modules %s: %w: %s", sub, err, out)
		}
	}
	for _, f := range []string{"modules.order", "modules.builtin", "modules.builtin.modinfo"} {
		if exists(filepath.Join(src, f)) {
			if err := copyFile(filepath.Join(src, f), filepath.Join(dst, f)); err != nil {
				return err
			}
		}
	}
	release := filepath.Base(src)
	base := filepath.Dir(filepath.Dir(filepath.Dir(dst))) // dst is BASE/lib/modules/RELEASE
	if out, err := exec.CommandContext(ctx, "depmod", "-b", base, release).CombinedOutput(); err != nil {
		return fmt.Errorf("depmod: %w: %s", err, out)
	}
	return nil
}

// CopyFile copies src to dst with its permission bits, making dst's directory.
func CopyFile(src, dst string) error { return copyFile(src, dst) }

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, fi.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
