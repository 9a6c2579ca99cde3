package vm

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// BootOptions are a machine's knobs; zero values give the defaults.
type BootOptions struct {
	MemoryMB int       // 1024
	CPUs     int       // 2
	Append   string    // more kernel command line
	Console  io.Writer // gets the serial console as it comes, besides Console()

	// Firmware is a UEFI firmware (OVMF_CODE) to boot the disk through,
	// for images that carry their own boot loader (Image.Kernel empty);
	// FirmwareVars is its variable store, copied for each machine.
	Firmware, FirmwareVars string
	// Reboot lets the guest reboot (QEMU otherwise exits when it does);
	// WaitReady waits for the agent after one.
	Reboot bool
	// DiskSizeMB makes the machine's disk larger than the image (the
	// overlay's virtual size); zero keeps the image's size.
	DiskSizeMB int64
	// GuestForwards, when set, give the guest a virtio NIC on QEMU's user
	// network with restrict=on (it reaches nothing outside), where a TCP
	// connection to each "GUESTIP:PORT" key goes to the value, a QEMU
	// guestfwd target: "cmd:COMMAND" runs COMMAND per connection with the
	// connection on its stdin and stdout (a relay to a test's server on the
	// host's loopback); "tcp:HOST:PORT" is one host connection that every
	// guest connection shares, so it suits one connection only.
	GuestForwards map[string]string
	// Net gives the guest that NIC even without forwards: an address by
	// DHCP, but no default route (the restricted network leases no
	// router; a guest that wants one adds 10.0.2.2).
	Net bool
	// Tap, when set, gives the guest a virtio NIC on this host tap device
	// instead (made by the caller, say on a bridge with other machines),
	// with MAC as its address; NetNS is the network namespace (a path such
	// as /run/netns/NAME) QEMU runs in, where the tap is.
	Tap, MAC, NetNS string
	// Flush makes QEMU honour the guest's disk flushes (cache=writeback),
	// so that what the guest synced survives PowerCut as on a real disk.
	// Without it (cache=unsafe, faster) a killed QEMU may lose anything.
	Flush bool
	// FwCfg are QEMU firmware configuration items: name (such as
	// opt/com.coreos/config) to the host file that is its content.
	FwCfg map[string]string
}

// kernelArgs keep the boot quiet (every console line is slow under TCG) and
// skip work a throwaway test VM does not need.
const kernelArgs = "console=ttyS0,115200 root=/dev/vda rw quiet loglevel=3 panic=-1 mitigations=off random.trust_cpu=on systemd.show_status=false"

// Machine is one booted VM.
type Machine struct {
	cmd     *exec.Cmd
	dir     string
	conn    net.Conn
	lines   chan string
	exited  chan struct{}
	console *syncBuffer

	// Started is when QEMU was started; ReadyUptime is the guest's uptime
	// (since the kernel started) when its agent came up.
	Started     time.Time
	ReadyAt     time.Time
	ReadyUptime time.Duration

	mu  sync.Mutex // one command at a time
	seq int

	args  []string  // QEMU's, to start it again after a power cut
	sock  string    // the agent's socket, QEMU connects to it
	out   io.Writer // QEMU's stdout and stderr
	netns string    // BootOptions.NetNS
}

// Boot starts img under QEMU on a qcow2 overlay of its own and returns once
// the guest's agent is ready, or fails (killing QEMU) when ctx ends first.
func Boot(ctx context.Context, img *Image, o BootOptions) (m *Machine, err error) {
	if o.MemoryMB == 0 {
		o.MemoryMB = 1024
	}
	if o.CPUs == 0 {
		o.CPUs = 2
	}
	dir, err := os.MkdirTemp("", "orbit-vm-")
	if err != nil {
		return nil, fmt.Errorf("boot: %w", err)
	}
	m = &Machine{dir: dir, console: &syncBuffer{}, netns: o.NetNS}
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	overlay := filepath.Join(dir, "disk.qcow2")
	if err := Overlay(ctx, img.Disk, overlay, o.DiskSizeMB); err != nil {
		return m, fmt.Errorf("boot: %w", err)
	}
	if o.FirmwareVars != "" {
		vars := filepath.Join(dir, "vars.fd")
		if err := copyFile(o.FirmwareVars, vars); err != nil {
			return m, fmt.Errorf("boot: firmware variables: %w", err)
		}
		o.FirmwareVars = vars
	}
	m.sock = filepath.Join(dir, "agent.sock")
	m.args = append(qemuArgs(img, overlay, o),
		"-chardev", "stdio,id=con,signal=off", "-serial", "chardev:con",
		"-chardev", "socket,id=agent,path="+m.sock, "-serial", "chardev:agent")
	m.out = m.console
	if o.Console != nil {
		m.out = io.MultiWriter(m.console, o.Console)
	}
	if err := m.start(ctx); err != nil {
		return m, fmt.Errorf("boot: %w", err)
	}
	if err := m.WaitReady(ctx); err != nil {
		return m, fmt.Errorf("boot: %w", err)
	}
	return m, nil
}

// start starts QEMU and waits for it to connect to the agent's socket.
func (m *Machine) start(ctx context.Context) error {
	// The harness listens and QEMU connects at start, so nothing the agent
	// writes can be lost before the harness is there to read it.
	_ = os.Remove(m.sock)
	ln, err := net.Listen("unix", m.sock)
	if err != nil {
		return err
	}
	defer ln.Close()
	m.lines, m.exited = make(chan string, 1024), make(chan struct{})
	m.cmd = exec.Command("qemu-system-x86_64", m.args...)
	if m.netns != "" {
		m.cmd = exec.Command("nsenter", append([]string{"--net=" + m.netns, "--", "qemu-system-x86_64"}, m.args...)...)
	}
	m.cmd.Stdout, m.cmd.Stderr = m.out, m.out
	// Gone with a test binary killed before its cleanup (a go test
	// timeout), rather than left running.
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	m.Started = time.Now()
	if err := m.cmd.Start(); err != nil {
		return fmt.Errorf("start qemu: %w", err)
	}
	exited := m.exited
	go func() { _ = m.cmd.Wait(); close(exited) }()

	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	select {
	case m.conn = <-accepted:
	case <-m.exited:
		return fmt.Errorf("qemu exited: %s", tail(m.console.Bytes(), 20))
	case <-ctx.Done():
		return fmt.Errorf("waiting for qemu: %w", ctx.Err())
	}
	go readLines(m.conn, m.lines)
	return nil
}

// PowerCut kills QEMU as pulling the plug would, starts it again on the
// same disk and firmware variables, and waits for the agent. Only what the
// guest flushed survives, and only with BootOptions.Flush.
func (m *Machine) PowerCut(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.kill()
	m.conn.Close()
	for range m.lines { // until the reader has seen the old port close
	}
	if err := m.start(ctx); err != nil {
		return fmt.Errorf("power on after the cut: %w", err)
	}
	if err := m.WaitReady(ctx); err != nil {
		return fmt.Errorf("power on after the cut: %w", err)
	}
	return nil
}

// WaitReady waits for the guest's agent to say it is ready: after Boot,
// once more for each reboot (BootOptions.Reboot). It sets ReadyAt and
// ReadyUptime.
func (m *Machine) WaitReady(ctx context.Context) error {
	for {
		line, err := m.next(ctx)
		if err != nil {
			return fmt.Errorf("waiting for %s: %w\nconsole:\n%s", ReadyMarker, err, tail(m.console.Bytes(), 40))
		}
		// Firmware may have written to the port before the agent: the
		// marker can follow its output on the same line.
		if i := strings.Index(line, ReadyMarker+" uptime="); i >= 0 {
			rest := line[i+len(ReadyMarker+" uptime="):]
			m.ReadyAt = time.Now()
			if d, err := time.ParseDuration(rest + "s"); err == nil {
				m.ReadyUptime = d
			}
			return nil
		}
	}
}

// Send writes a command to the agent without waiting for an answer: for
// commands that end the agent, such as a reboot.
func (m *Machine) Send(command string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.seq++
	_, err := m.conn.Write([]byte(fmt.Sprintf("s%d %s\n", m.seq, base64.StdEncoding.EncodeToString([]byte(command)))))
	return err
}

// Overlay makes a qcow2 overlay of the raw image base at path, sizeMB
// large (the base's size when zero).
func Overlay(ctx context.Context, base, path string, sizeMB int64) error {
	args := []string{"create", "-q", "-f", "qcow2", "-F", "raw", "-b", base, path}
	if sizeMB > 0 {
		args = append(args, fmt.Sprintf("%dM", sizeMB))
	}
	if out, err := exec.CommandContext(ctx, "qemu-img", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("overlay on %s: %w: %s", base, err, out)
	}
	return nil
}

// qemuArgs is the machine without its serial ports: TCG (there is no KVM
// where the tests run), Debian's kernel booted directly, the overlay as
// virtio-blk, no network, no display.
func qemuArgs(img *Image, disk string, o BootOptions) []string {
	appendLine := kernelArgs
	if o.Append != "" {
		appendLine += " " + o.Append
	}
	args := []string{"-nodefaults", "-no-user-config", "-display", "none"}
	if !o.Reboot {
		args = append(args, "-no-reboot")
	}
	args = append(args, "-machine", "q35,accel=tcg", "-cpu", "max",
		"-smp", fmt.Sprint(o.CPUs), "-m", fmt.Sprint(o.MemoryMB))
	if img.Kernel != "" {
		args = append(args, "-kernel", img.Kernel, "-initrd", img.Initramfs, "-append", appendLine)
	}
	if o.Firmware != "" {
		args = append(args, "-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+o.Firmware)
		if o.FirmwareVars != "" {
			args = append(args, "-drive", "if=pflash,format=raw,unit=1,file="+o.FirmwareVars)
		}
	}
	if o.Tap != "" {
		dev := "virtio-net-pci,netdev=net0"
		if o.MAC != "" {
			dev += ",mac=" + o.MAC
		}
		args = append(args, "-netdev", "tap,id=net0,ifname="+o.Tap+",script=no,downscript=no", "-device", dev)
	} else if len(o.GuestForwards) > 0 || o.Net {
		keys := make([]string, 0, len(o.GuestForwards))
		for g := range o.GuestForwards {
			keys = append(keys, g)
		}
		sort.Strings(keys)
		netdev := "user,id=net0,restrict=on"
		for _, g := range keys {
			netdev += ",guestfwd=tcp:" + g + "-" + strings.ReplaceAll(o.GuestForwards[g], ",", ",,")
		}
		args = append(args, "-netdev", netdev, "-device", "virtio-net-pci,netdev=net0")
	}
	names := make([]string, 0, len(o.FwCfg))
	for n := range o.FwCfg {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		args = append(args, "-fw_cfg", "name="+n+",file="+strings.ReplaceAll(o.FwCfg[n], ",", ",,"))
	}
	cache := "unsafe"
	if o.Flush {
		cache = "writeback"
	}
	return append(args, "-drive", "file="+disk+",if=virtio,format=qcow2,cache="+cache)
}

// InteractiveArgs is the command line of a machine whose console is the
// caller's terminal (QEMU's monitor on Ctrl-A c, quit with Ctrl-A x).
func InteractiveArgs(img *Image, overlay string, o BootOptions) []string {
	if o.MemoryMB == 0 {
		o.MemoryMB = 1024
	}
	if o.CPUs == 0 {
		o.CPUs = 2
	}
	return append(qemuArgs(img, overlay, o), "-serial", "mon:stdio", "-serial", "null")
}

func readLines(conn net.Conn, lines chan<- string) {
	r := bufio.NewReader(conn)
	for {
		s, err := r.ReadString('\n')
		if s != "" {
			lines <- strings.TrimRight(s, "\r\n")
		}
		if err != nil {
			close(lines)
			return
		}
	}
}

func (m *Machine) next(ctx context.Context) (string, error) {
	select {
	case l, ok := <-m.lines:
		if !ok {
			return "", errors.New("agent port closed (qemu exited?)")
		}
		return l, nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// Console is what the guest wrote on its console so far.
func (m *Machine) Console() string { return string(m.console.Bytes()) }

// Poweroff asks systemd to power the machine off and waits for QEMU to
// exit; when ctx ends first QEMU is killed and the error says so.
func (m *Machine) Poweroff(ctx context.Context) error {
	// Not Run: the agent is stopped on the way down and may never answer.
	m.mu.Lock()
	_, err := m.conn.Write([]byte("poweroff " + base64.StdEncoding.EncodeToString([]byte("systemctl poweroff")) + "\n"))
	m.mu.Unlock()
	if err != nil {
		m.kill()
		return fmt.Errorf("poweroff: send: %w", err)
	}
	select {
	case <-m.exited:
		return nil
	case <-ctx.Done():
		m.kill()
		return fmt.Errorf("poweroff: qemu still running, killed: %w", ctx.Err())
	}
}

func (m *Machine) kill() {
	if m.cmd != nil && m.cmd.Process != nil {
		_ = m.cmd.Process.Kill()
		<-m.exited
	}
}

// Close kills QEMU if it still runs and removes the overlay: safe to call
// in any state, and more than once.
func (m *Machine) Close() {
	if m.cmd != nil && m.cmd.Process != nil {
		select {
		case <-m.exited:
		default:
			m.kill()
		}
	}
	if m.conn != nil {
		m.conn.Close()
	}
	if m.dir != "" {
		os.RemoveAll(m.dir)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.b.Bytes()...)
}
