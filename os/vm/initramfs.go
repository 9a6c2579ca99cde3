package vm

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
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
		byName[strings.TrimSuffix(filepath.Base(mod), ".ko")] = mod
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
		m, ok := byName[n]
		if !ok {
			return nil, fmt.Errorf("module %s is not in %s/modules.dep (built in?)", n, modDir)
		}
		visit(m)
	}
	return order, nil
}

// writeInitramfs writes a gzipped newc cpio archive to path.
func writeInitramfs(path, modDir, busybox string) error {
	order, err := moduleOrder(modDir, initModules)
	if err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	w := &cpioWriter{w: zw}
	for _, d := range []string{"bin", "dev", "proc", "sys", "newroot", "modules"} {
		w.entry(d, 0o040755, 0, nil)
	}
	w.entry("dev/console", 0o020600, 5<<8|1, nil)
	bb, err := os.ReadFile(busybox)
	if err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	w.entry("bin/busybox", 0o100755, 0, bb)
	w.entry("init", 0o100755, 0, []byte(initScript))
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
