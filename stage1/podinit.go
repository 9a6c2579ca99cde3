package stage1

import (
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/orbit-pods/orbit/pod"
)

// The pod's init runs as nobody (pod.NobodyID), with no capabilities: it
// only waits and reaps, which needs neither; and an app running as root
// then cannot reach it through /proc/1 (a different user, and the init
// makes itself non-dumpable). A pod's user namespace maps nobody too.

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
// one with only loopback for --net=none, the host's for --net=host). In a
// pod with a user namespace, the init makes that first, and the others
// in it, the network namespace included, so that they are the pod's.
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
	attr := &syscall.SysProcAttr{
		Cloneflags: unix.CLONE_NEWPID | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC,
		Chroot:     root,
		Setsid:     true,
	}
	if s.m.NetMode() == pod.NetNone {
		attr.Cloneflags |= unix.CLONE_NEWNET
	}
	if u := s.m.UserNamespace; u != nil {
		// The kernel makes the user namespace first, and the other new
		// namespaces of the clone belong to it. Go writes the maps
		// before the child goes on; setgroups stays allowed, as the
		// apps' runc sets their groups in this namespace.
		attr.Cloneflags |= unix.CLONE_NEWUSER | unix.CLONE_NEWNET
		attr.UidMappings = sysIDMaps(u.UIDMappings)
		attr.GidMappings = sysIDMaps(u.GIDMappings)
		attr.GidMappingsEnableSetgroups = true
	}
	attr.Credential = &syscall.Credential{Uid: pod.NobodyID, Gid: pod.NobodyID, Groups: []uint32{}}
	cmd := &exec.Cmd{
		Path: initBinary,
		Args: []string{initBinary},
		Env:  []string{"PATH=/"},
		Dir:  "/",
		// No stdio: the init has nothing to say, and must not hold the
		// supervisor's stdout (a journal stream, a pipe) open.
		ExtraFiles:  []*os.File{r},
		SysProcAttr: attr,
	}
	// Namespaces are per thread: one thread forks the init from the
	// pod's network namespace, then enters the init's new namespaces to
	// set them up, and is thrown away (a goroutine that ends locked to its
	// thread takes the thread with it).
	err = onThread(func() error {
		if err := s.forkInit(cmd); err != nil {
			return fmt.Errorf("start pod init: %w", err)
		}
		if err := enterPodNamespaces(cmd.Process.Pid); err != nil {
			return err
		}
		return s.setUpNamespaces()
	})
	if cmd.Process != nil {
		s.mu.Lock()
		s.initProc = &initProcess{cmd: cmd}
		s.mu.Unlock()
		s.logf("pod init is PID %d", cmd.Process.Pid)
	}
	return err
}

// setUpNamespaces sets what the pod's namespaces start with, from a
// thread in them: the hostname, and loopback up in a network namespace
// the init made.
func (s *supervisor) setUpNamespaces() error {
	if err := unix.Sethostname([]byte(s.m.Hostname)); err != nil {
		return fmt.Errorf("set hostname %q: %w", s.m.Hostname, err)
	}
	if s.m.NetMode() == pod.NetNone || s.m.UserNamespace != nil {
		lo, err := netlink.LinkByName("lo")
		if err == nil {
			err = netlink.LinkSetUp(lo)
		}
		if err != nil {
			return fmt.Errorf("bring up loopback: %w", err)
		}
	}
	return nil
}

// onThread runs f on a locked thread of its own, which is thrown away
// after: f may leave it in other namespaces.
func onThread(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		errc <- f()
	}()
	return <-errc
}

// forkInit forks the init from the pod's network namespace, when that is
// one stage0 made.
func (s *supervisor) forkInit(cmd *exec.Cmd) error {
	if s.m.NetMode() == pod.NetCNI && s.m.UserNamespace == nil {
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
	return cmd.Start()
}

// enterPodNamespaces moves the calling (locked, thrown-away) thread into
// the UTS, IPC and network namespaces the init pid holds. Being root in
// the host's user namespace, it may do so in namespaces of the pod's user
// namespace too.
func enterPodNamespaces(pid int) error {
	for _, k := range []struct {
		name string
		flag int
	}{{"uts", unix.CLONE_NEWUTS}, {"ipc", unix.CLONE_NEWIPC}, {"net", unix.CLONE_NEWNET}} {
		f, err := os.Open(fmt.Sprintf("/proc/%d/ns/%s", pid, k.name))
		if err != nil {
			return fmt.Errorf("the pod's %s namespace: %w", k.name, err)
		}
		err = unix.Setns(int(f.Fd()), k.flag)
		f.Close()
		if err != nil {
			return fmt.Errorf("enter the pod's %s namespace: %w", k.name, err)
		}
	}
	return nil
}

// inPodNamespaces runs f on a thread of its own in the pod's namespaces.
func (s *supervisor) inPodNamespaces(f func() error) error {
	pid, err := s.initProc.Pid()
	if err != nil {
		return err
	}
	return onThread(func() error {
		if err := enterPodNamespaces(pid); err != nil {
			return err
		}
		return f()
	})
}

// setSysctls sets the pod's namespaced sysctls (a CRI sandbox's) once its
// networks are up, so that an interface's (net.ipv4.conf.eth0.*) is
// there and the pod's value is the one that stays. A write to
// /proc/sys/net, kernel.shm* or kernel.hostname applies to the writer's
// own net, ipc or uts namespace, which are the pod's on this thread.
func (s *supervisor) setSysctls() error {
	if len(s.m.Sysctls) == 0 {
		return nil
	}
	podRoot := -1
	if u := s.m.UserNamespace; u != nil {
		uid, _ := u.Root()
		podRoot = int(uid)
	}
	return s.inPodNamespaces(func() error {
		for k, v := range s.m.Sysctls {
			// kernel.shmmax, or kernel/shmmax where a part has dots
			// (net/ipv4/conf/eth0.100/forwarding).
			rel := k
			if !strings.Contains(k, "/") {
				rel = strings.ReplaceAll(k, ".", "/")
			}
			if strings.Contains(rel, "..") || path.Clean(rel) != rel || path.IsAbs(rel) {
				return fmt.Errorf("sysctl %q: not a sysctl name", k)
			}
			// The kernel lets only the root of the namespace's own user
			// namespace write an IPC namespace's sysctls, not the root
			// of an ancestor (ipc_permissions): for those this thread
			// takes the pod root's host ID as its effective one, and
			// back (setresuid on this thread only, which is thrown away
			// after; the saved ID 0 keeps the capabilities).
			asPodRoot := podRoot >= 0 && pod.IPCSysctl(k)
			if asPodRoot {
				if err := setThreadEUID(podRoot); err != nil {
					return fmt.Errorf("sysctl %s: become the pod's root: %w", k, err)
				}
			}
			err := os.WriteFile("/proc/sys/"+rel, []byte(v), 0)
			if asPodRoot {
				if rerr := setThreadEUID(0); rerr != nil {
					return fmt.Errorf("sysctl %s: become root again: %w", k, rerr)
				}
			}
			if err != nil {
				return fmt.Errorf("sysctl %s=%s: %w", k, v, err)
			}
		}
		return nil
	})
}

// setThreadEUID sets the calling thread's effective user ID alone: the
// raw system call, not Go's, which changes every thread's.
func setThreadEUID(uid int) error {
	keep := ^uintptr(0) // -1: unchanged
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, keep, uintptr(uid), keep); e != 0 {
		return e
	}
	return nil
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
