package vm

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// The initramfs is the project's own rather than Debian's generic one: a
// static busybox, the few modules that reach an ext4 root on virtio-blk, and
// a script that mounts it and switches to systemd. It is a few MB instead of
// tens, which under TCG is seconds of boot saved.
var initModules = []string{"virtio_pci", "virtio_blk", "crc32c_generic", "ext4"}

const initScript = `#!/bin/busybox sh
# orbit-vm initramfs: load what reaches /dev/vda, mount it, hand over to systemd.
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
/bin/busybox mount -t devtmpfs dev /dev
for m in $(/bin/busybox cat /modules.order); do
  /bin/busybox insmod /modules/$m || echo "initramfs: insmod $m failed"
done
i=0
while [ ! -b /dev/vda ] && [ $i -lt 300 ]; do /bin/busybox sleep 0.1; i=$((i+1)); done
if ! /bin/busybox mount -t ext4 -o rw /dev/vda /newroot; then
  echo "initramfs: cannot mount /dev/vda"; /bin/busybox poweroff -f
fi
# init= on the kernel command line picks another init (init=/bin/sh to debug).
init=/sbin/init
for a in $(/bin/busybox cat /proc/cmdline); do
  case "$a" in init=*) init=${a#init=} ;; esac
done
/bin/busybox umount /proc /sys /dev
exec /bin/busybox switch_root /newroot "$init"
`

// moduleOrder returns the module files (relative to modDir) that load
// names, each after what it depends on, read from modules.dep.
func moduleOrder(modDir string, names []string) ([]string, error) {
	f, err := os.Open(filepath.Join(modDir, "modules.dep"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	deps := map[string][]string{}
	byName := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		mod, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		deps[mod] = strings.Fields(rest)
		// Files may say dm-mod for the module dm_mod.
		byName[strings.ReplaceAll(strings.TrimSuffix(filepath.Base(mod), ".ko"), "-", "_")] = mod
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	var order []string
	seen := map[string]bool{}
	var visit func(string)
	visit = func(m string) {
		if seen[m] {
			return
		}
		seen[m] = true
		for _, d := range deps[m] {
			visit(d)
		}
		order = append(order, m)
	}
	for _, n := range names {
		m, ok := byName[strings.ReplaceAll(n, "-", "_")]
		if !ok {
			return nil, fmt.Errorf("module %s is not in %s/modules.dep (built in?)", n, modDir)
		}
		visit(m)
	}
	return order, nil
}

// writeInitramfs writes the harness's initramfs to path.
func writeInitramfs(path, modDir, busybox string) error {
	return WriteInitramfs(path, modDir, InitramfsSpec{Modules: initModules, Init: initScript, Busybox: busybox})
}

// InitramfsSpec is what goes into an initramfs besides its directories.
type InitramfsSpec struct {
	Modules  []string // module names, loaded by Init in modules.order order
	Init     string   // the /init script, run by /bin/busybox sh
	Busybox  string   // a static busybox, /bin/busybox
	Programs []string // host programs copied to the same path, with the shared libraries ldd lists
}

// WriteInitramfs writes a gzipped newc cpio archive to path: busybox, the
// modules (and what they depend on, from modDir's modules.dep) under
// /modules with /modules.order, the programs and their libraries, and Init.
func WriteInitramfs(path, modDir string, spec InitramfsSpec) error {
	order, err := moduleOrder(modDir, spec.Modules)
	if err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	files, err := WithLibraries(spec.Programs)
	if err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	w := &cpioWriter{w: zw}
	dirs := map[string]bool{}
	for _, d := range []string{"bin", "dev", "proc", "sys", "run", "newroot", "modules"} {
		w.entry(d, 0o040755, 0, nil)
		dirs[d] = true
	}
	w.entry("dev/console", 0o020600, 5<<8|1, nil)
	bb, err := os.ReadFile(spec.Busybox)
	if err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	w.entry("bin/busybox", 0o100755, 0, bb)
	w.entry("init", 0o100755, 0, []byte(spec.Init))
	for _, f := range files {
		rel := strings.TrimPrefix(filepath.Clean(f), "/")
		var parents []string
		for d := filepath.Dir(rel); d != "." && !dirs[d]; d = filepath.Dir(d) {
			parents = append(parents, d)
		}
		for i := len(parents) - 1; i >= 0; i-- {
			w.entry(parents[i], 0o040755, 0, nil)
			dirs[parents[i]] = true
		}
		b, err := os.ReadFile(f) // through symlinks: the library's real content
		if err != nil {
			return fmt.Errorf("initramfs: %w", err)
		}
		w.entry(rel, 0o100755, 0, b)
	}
	var names []string
	for _, m := range order {
		b, err := os.ReadFile(filepath.Join(modDir, m))
		if err != nil {
			return fmt.Errorf("initramfs: %w", err)
		}
		w.entry("modules/"+filepath.Base(m), 0o100644, 0, b)
		names = append(names, filepath.Base(m))
	}
	w.entry("modules.order", 0o100644, 0, []byte(strings.Join(names, "\n")+"\n"))
	w.entry("TRAILER!!!", 0, 0, nil)
	if w.err != nil {
		return fmt.Errorf("initramfs: %w", w.err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

// WithLibraries returns the programs and the shared libraries (and the
// dynamic loader) ldd says they load, each once.
func WithLibraries(programs []string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	add := func(p string) {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	for _, p := range programs {
		add(p)
		b, err := exec.Command("ldd", p).Output()
		if err != nil {
			return nil, fmt.Errorf("ldd %s: %w", p, err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			for _, f := range strings.Fields(line) {
				if strings.HasPrefix(f, "/") {
					add(f)
				}
			}
		}
	}
	return out, nil
}

// cpioWriter writes the "newc" format the kernel unpacks.
type cpioWriter struct {
	w   interface{ Write([]byte) (int, error) }
	ino int
	n   int
	err error
}

func (c *cpioWriter) write(b []byte) {
	if c.err != nil {
		return
	}
	_, c.err = c.w.Write(b)
	c.n += len(b)
}

func (c *cpioWriter) pad() {
	if r := c.n % 4; r != 0 {
		c.write(make([]byte, 4-r))
	}
}

func (c *cpioWriter) entry(name string, mode uint32, rdev uint32, data []byte) {
	c.ino++
	nlink := 1
	if mode&0o170000 == 0o040000 {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdev>>8, rdev&0xff, len(name)+1, 0)
	c.write([]byte(hdr))
	c.write(append([]byte(name), 0))
	c.pad()
	c.write(data)
	c.pad()
}
