package vm

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// RootfsSpec says which Debian system to bootstrap.
type RootfsSpec struct {
	Suite    string   // DefaultSuite when empty
	Mirror   string   // DefaultMirror when empty
	Packages []string // DefaultPackages() when nil
	CacheDir string   // where tarballs are kept
}

func (s RootfsSpec) withDefaults() RootfsSpec {
	if s.Suite == "" {
		s.Suite = DefaultSuite
	}
	if s.Mirror == "" {
		s.Mirror = DefaultMirror
	}
	if s.Packages == nil {
		s.Packages = DefaultPackages()
	}
	s.Packages = append([]string(nil), s.Packages...)
	sort.Strings(s.Packages)
	return s
}

// rootfsRecipe changes when the way a rootfs is made changes, so that old
// tarballs are not reused.
const rootfsRecipe = "1"

// key names the tarball by everything that decides its content.
func (s RootfsSpec) key() string {
	h, sum := newHash()
	h.add("rootfs", rootfsRecipe, s.Suite, s.Mirror)
	h.add(s.Packages...)
	return sum()
}

// Rootfs returns the path of the rootfs tarball for spec, bootstrapping it
// with debootstrap when the cache has none. built says whether it did.
func Rootfs(ctx context.Context, spec RootfsSpec, log func(string, ...any)) (path string, built bool, err error) {
	spec = spec.withDefaults()
	if spec.CacheDir == "" {
		return "", false, fmt.Errorf("rootfs: no cache directory")
	}
	path = filepath.Join(spec.CacheDir, "rootfs-"+spec.Suite+"-"+spec.key()+".tar")
	if _, err := os.Stat(path); err == nil {
		return path, false, nil
	}
	if err := os.MkdirAll(spec.CacheDir, 0o755); err != nil {
		return "", false, fmt.Errorf("rootfs: %w", err)
	}
	// The cache is shared by every test run on the machine: one builds a
	// given tarball, the others wait for it and use it.
	lock, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", false, fmt.Errorf("rootfs: %w", err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return "", false, fmt.Errorf("rootfs: lock %s: %w", lock.Name(), err)
	}
	if _, err := os.Stat(path); err == nil {
		return path, false, nil
	}
	dir, err := os.MkdirTemp(spec.CacheDir, "debootstrap-")
	if err != nil {
		return "", false, fmt.Errorf("rootfs: %w", err)
	}
	defer os.RemoveAll(dir)

	start := time.Now()
	log("debootstrap %s from %s with %s (minutes when cold)", spec.Suite, spec.Mirror, strings.Join(spec.Packages, ","))
	args := []string{"--variant=minbase", "--include=" + strings.Join(spec.Packages, ","), spec.Suite, dir, spec.Mirror}
	if out, err := exec.CommandContext(ctx, "debootstrap", args...).CombinedOutput(); err != nil {
		return "", false, fmt.Errorf("rootfs: debootstrap %s: %w\n%s", strings.Join(args, " "), err, tail(out, 40))
	}
	// What apt downloaded is not needed in the image and is most of its size.
	for _, g := range []string{"var/cache/apt/archives/*.deb", "var/lib/apt/lists/*_*"} {
		m, _ := filepath.Glob(filepath.Join(dir, g))
		for _, f := range m {
			_ = os.Remove(f)
		}
	}
	log("debootstrap took %s", time.Since(start).Round(time.Second))

	// Written under a temporary name and renamed, so a cancelled build never
	// leaves a tarball that looks complete.
	tmp := path + ".tmp"
	if out, err := exec.CommandContext(ctx, "tar", "--numeric-owner", "--xattrs", "-C", dir, "-cf", tmp, ".").CombinedOutput(); err != nil {
		os.Remove(tmp)
		return "", false, fmt.Errorf("rootfs: pack %s: %w\n%s", dir, err, out)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", false, fmt.Errorf("rootfs: %w", err)
	}
	return path, true, nil
}

// tail returns the last n lines of out: enough of a failing tool's output to
// say why.
func tail(out []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
