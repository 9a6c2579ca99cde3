package stage1

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/orbit-pods/orbit/pod"
)

// initUID is who the pod's init runs as: nobody, with no capabilities. It
// only waits and reaps, which needs neither; and an app running as root
// then cannot reach it through /proc/1 (a different user, and the init
// makes itself non-dumpable).
const initUID = 65534

// initProcess is the pod's PID 1, orbit-pod-init, a child of the
// supervisor. Its methods are those of a libcontainer.Process that the
// supervisor uses.
type initProcess struct{ cmd *exec.Cmd }

func (p *initProcess) Pid() (int, error) { return p.cmd.Process.Pid, nil }

func (p *initProcess) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

func (p *initProcess) Wait() (*os.ProcessState, error) {
	err := p.cmd.Wait()
	return p.cmd.ProcessState, err
}

// startInit starts the pod's init in the namespaces the apps then join:
// a new PID, IPC and UTS namespace, and the pod's network namespace (a new
// one with only loopback for --net=none, the host's for --net=host).
//
// It is a plain fork and exec, not a container start: the init needs no
// mounts, cgroup or seccomp of its own, and a libcontainer start (re-exec
// of stage1, nsexec, pivot_root) took about as long as the app's own
// start. It runs chrooted in a read-only root holding only its binary.
func (s *supervisor) startInit() error {
	root := s.dir.InitRootfs()
	if err := s.mountInitRoot(root); err != nil {
		return fmt.Errorf("pod init root: %w", err)
	}
	// The pod dies with its supervisor: the init holds the read end of a
	// pipe whose only writer is this process, and exits when it reads EOF;
	// the kernel then kills everything in the pod's PID namespace. (A
	// parent-death signal would not do: it follows the thread that forked,
	// which ends below.) gc still releases what the pod held.
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	s.lifeline = w
	cmd := &exec.Cmd{
		Path: initBinary,
		Args: []string{initBinary},
		Env:  []string{"PATH=/"},
		Dir:  "/",
		// No stdio: the init has nothing to say, and must not hold the
		// supervisor's stdout (a journal stream, a pipe) open.
		ExtraFiles: []*os.File{r},
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags: unix.CLONE_NEWPID,
			Chroot:     root,
			Credential: &syscall.Credential{Uid: initUID, Gid: initUID, Groups: []uint32{}},
			Setsid:     true,
		},
	}
	// Namespaces are per thread: this thread enters or makes the pod's,
	// forks the init from there, and is then thrown away (a goroutine
	// that ends locked to its thread takes the thread with it).
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		errc <- s.forkInit(cmd)
	}()
	if err := <-errc; err != nil {
		return fmt.Errorf("start pod init: %w", err)
	}
	s.mu.Lock()
	s.initProc = &initProcess{cmd: cmd}
	s.mu.Unlock()
	s.logf("pod init is PID %d", cmd.Process.Pid)
	return nil
}

// forkInit runs on a locked thread that it leaves in the pod's namespaces.
func (s *supervisor) forkInit(cmd *exec.Cmd) error {
	flags := unix.CLONE_NEWUTS | unix.CLONE_NEWIPC
	switch s.m.NetMode() {
	case pod.NetNone:
		flags |= unix.CLONE_NEWNET
	case pod.NetHost:
	default:
		f, err := os.Open(s.dir.NetNSFile())
		if err != nil {
			return fmt.Errorf("pod network namespace: %w", err)
		}
		err = unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
		f.Close()
		if err != nil {
			return fmt.Errorf("enter the pod network namespace: %w", err)
		}
	}
	if err := unix.Unshare(flags); err != nil {
		return fmt.Errorf("new namespaces: %w", err)
	}
	if err := unix.Sethostname([]byte(s.m.Hostname)); err != nil {
		return fmt.Errorf("set hostname %q: %w", s.m.Hostname, err)
	}
	// Namespaced sysctls (a CRI sandbox's) are set from this thread: a
	// write to /proc/sys/net, kernel.shm* or kernel.hostname applies to
	// the writer's own net, ipc or uts namespace, which are the pod's now.
	for k, v := range s.m.Sysctls {
		if strings.Contains(k, "/") || strings.Contains(k, "..") {
			return fmt.Errorf("sysctl %q: not a sysctl name", k)
		}
		p := "/proc/sys/" + strings.ReplaceAll(k, ".", "/")
		if err := os.WriteFile(p, []byte(v), 0); err != nil {
			return fmt.Errorf("sysctl %s=%s: %w", k, v, err)
		}
	}
	if s.m.NetMode() == pod.NetNone {
		lo, err := netlink.LinkByName("lo")
		if err == nil {
			err = netlink.LinkSetUp(lo)
		}
		if err != nil {
			return fmt.Errorf("bring up loopback: %w", err)
		}
	}
	return cmd.Start()
}

// mountInitRoot makes the init's root: the pod's stage1/rootfs directory
// holding only the init binary, bind-mounted read-only in the pod's mount
// namespace (so the host sees an empty directory, and no mount to undo if
// the supervisor is killed).
func (s *supervisor) mountInitRoot(root string) error {
	target := filepath.Join(root, initBinary)
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(target, nil, 0o755); err != nil {
		return err
	}
	ro := uintptr(unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV)
	for _, m := range []struct{ src, dst string }{{s.opts.InitPath, target}, {root, root}} {
		if err := unix.Mount(m.src, m.dst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind %s to %s: %w", m.src, m.dst, err)
		}
		s.mounts = append(s.mounts, m.dst)
		if err := unix.Mount("", m.dst, "", ro, ""); err != nil {
			return fmt.Errorf("make %s read-only: %w", m.dst, err)
		}
	}
	return nil
}
