// Command escapeprobe runs inside a pod and tries, one by one, what a
// hostile app would try to get out. It prints one line per attempt,
// "NAME ok" when the attempt was refused and "NAME ESCAPED: ..." when it
// worked, so the functional test can tell which defence failed.
//go:debug containermaxprocs=0
//go:debug updatemaxprocs=0

// The runtime then keeps no cgroup file open, so every descriptor beyond
// stdio is one the probe inherited.
package main

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

func main() {
	check := func(name string, err error, detail string) {
		if err != nil {
			fmt.Printf("%s ok (%v)\n", name, err)
			return
		}
		fmt.Printf("%s ESCAPED: %s\n", name, detail)
	}
	check("sysrq", writeFile("/proc/sysrq-trigger", "h"), "wrote /proc/sysrq-trigger")
	check("sys", writeFile("/sys/kernel/profiling", "1"), "wrote /sys")
	check("mount", unix.Mount("none", "/tmp", "tmpfs", 0, ""), "mounted a tmpfs")
	check("module", unix.InitModule([]byte("not a module"), ""), "init_module accepted")
	check("ptrace", unix.PtraceAttach(1), "attached to PID 1")
	_, err := unix.KeyctlInt(unix.KEYCTL_JOIN_SESSION_KEYRING, 0, 0, 0, 0)
	check("keyctl", err, "joined a session keyring")
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_ICMP)
	if err == nil {
		unix.Close(fd)
	}
	check("rawsocket", err, "opened a raw socket")
	check("userns", unix.Unshare(unix.CLONE_NEWUSER), "made a user namespace")
	check("setns", setnsHost(), "joined another namespace")
	check("hostenv", hostEnvVisible(), "read the host's environment")
	check("procexe", writeFile("/proc/1/exe", "x"), "wrote the pod init's binary")
	check("leakedfd", leakedFD(), "holds a descriptor of the host")
	check("cwd", cwdOutside(), "cwd outside the root")
	check("devmem", writeFile("/dev/mem", "x"), "wrote /dev/mem")
	check("mknod", unix.Mknod("/tmp/sda", unix.S_IFBLK|0o600, int(unix.Mkdev(8, 0))), "made a block device")
}

func writeFile(path, s string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.WriteString(s)
	return err
}

// setnsHost tries the namespaces of every process it can see.
func setnsHost() error {
	fd, err := unix.Open("/proc/1/ns/mnt", unix.O_RDONLY, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Setns(fd, unix.CLONE_NEWNS)
}

// hostEnvVisible looks for the sentinel the test put in orbit's own
// environment in every environ the app can read.
func hostEnvVisible() error {
	sentinel := os.Getenv("PROBE_SENTINEL")
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err == nil && strings.Contains(string(b), sentinel) && sentinel != "" {
			return nil
		}
	}
	return fmt.Errorf("sentinel not found")
}

// leakedFD looks for any open descriptor beyond stdio that points outside
// the app's own files.
func leakedFD() error {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return err
	}
	for _, e := range ents {
		switch e.Name() {
		case "0", "1", "2":
			continue
		}
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil || strings.HasPrefix(target, "anon_inode:") {
			continue // ReadDir's own, closed since; the Go runtime's poller
		}
		fmt.Fprintf(os.Stderr, "leaked descriptor %s -> %s\n", e.Name(), target)
		return nil
	}
	return fmt.Errorf("only stdio open")
}

func cwdOutside() error {
	wd, err := os.Readlink("/proc/self/cwd")
	if err != nil {
		return err
	}
	if wd != "/" {
		return nil
	}
	return fmt.Errorf("cwd is /")
}
