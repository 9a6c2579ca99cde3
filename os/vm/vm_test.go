package vm

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestRootfsCacheKeyFollowsThePackageListNotItsOrder(t *testing.T) {
	a := RootfsSpec{Packages: []string{"systemd", "dbus"}}.withDefaults()
	b := RootfsSpec{Packages: []string{"dbus", "systemd"}}.withDefaults()
	c := RootfsSpec{Packages: []string{"dbus", "systemd", "curl"}}.withDefaults()
	if a.key() != b.key() {
		t.Errorf("same packages in another order give another key")
	}
	if a.key() == c.key() {
		t.Errorf("another package list gives the same key")
	}
}

func TestModuleOrderLoadsDependenciesFirst(t *testing.T) {
	dir := t.TempDir()
	dep := "kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/jbd2/jbd2.ko\n" +
		"kernel/fs/jbd2/jbd2.ko:\nkernel/lib/crc16.ko:\n" +
		"kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko\nkernel/drivers/virtio/virtio.ko:\n"
	if err := os.WriteFile(filepath.Join(dir, "modules.dep"), []byte(dep), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := moduleOrder(dir, []string{"virtio_blk", "ext4"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"kernel/drivers/virtio/virtio.ko", "kernel/drivers/block/virtio_blk.ko",
		"kernel/lib/crc16.ko", "kernel/fs/jbd2/jbd2.ko", "kernel/fs/ext4/ext4.ko"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("order %v, want %v", got, want)
	}
	if _, err := moduleOrder(dir, []string{"nosuch"}); err == nil {
		t.Errorf("a module missing from modules.dep is not an error")
	}
}

// fakeAgent answers like the guest agent: framed, base64, with stale lines
// from an abandoned command before each answer.
func fakeAgent(c net.Conn, answer func(cmd string) (string, string, int)) {
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		id, enc, _ := strings.Cut(strings.TrimSpace(line), " ")
		cmd, _ := base64.StdEncoding.DecodeString(enc)
		so, se, rc := answer(string(cmd))
		fmt.Fprintf(c, "@@ORBIT-OUT old\nc2xhdGU=\n@@ORBIT-END old 9\n")
		fmt.Fprintf(c, "@@ORBIT-OUT %s\n%s\n@@ORBIT-ERR %s\n%s\n@@ORBIT-END %s %d\n", id,
			base64.StdEncoding.EncodeToString([]byte(so)), id, base64.StdEncoding.EncodeToString([]byte(se)), id, rc)
	}
}

func TestRunReturnsTheCommandsOutputAndStatus(t *testing.T) {
	host, guest := net.Pipe()
	defer host.Close()
	go fakeAgent(guest, func(cmd string) (string, string, int) {
		return "out of " + cmd + "\n@@ORBIT-END c1 0\n", "err\n", 3
	})
	m := &Machine{conn: host, lines: make(chan string, 16)}
	go readLines(m.conn, m.lines)
	r, err := m.Run(context.Background(), "exit 3")
	if err != nil {
		t.Fatal(err)
	}
	want := Result{Stdout: "out of exit 3\n@@ORBIT-END c1 0\n", Stderr: "err\n", Code: 3}
	if r != want {
		t.Errorf("Run: %+v, want %+v", r, want)
	}
}

func TestRunFailsWhenTheMachineGoesAway(t *testing.T) {
	host, guest := net.Pipe()
	m := &Machine{conn: host, lines: make(chan string, 16)}
	go readLines(m.conn, m.lines)
	go func() {
		_, _ = bufio.NewReader(guest).ReadString('\n')
		guest.Close()
	}()
	if _, err := m.Run(context.Background(), "true"); err == nil {
		t.Errorf("Run after the agent's port closed: no error")
	}
}
