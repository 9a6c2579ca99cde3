package pod

import (
	"fmt"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// DefaultSeccompSet names the default blocklist in --seccomp.
const DefaultSeccompSet = "@orbit/default-blocklist"

// DefaultSeccompBlocklist are the system calls an app may not make unless
// told otherwise, in the rkt tradition of a blocklist (an allowlist breaks
// more software for little more safety once capabilities are dropped).
// They load or change the kernel, reach other processes or namespaces,
// mount, or are known escape routes (open_by_handle_at). Each fails with
// EPERM.
var DefaultSeccompBlocklist = []string{
	"_sysctl", "acct", "add_key", "adjtimex", "bpf", "clock_adjtime", "clock_settime",
	"create_module", "delete_module", "fanotify_init", "finit_module", "fsconfig", "fsmount",
	"fsopen", "fspick", "get_kernel_syms", "get_mempolicy", "init_module", "ioperm", "iopl",
	"kcmp", "kexec_file_load", "kexec_load", "keyctl", "lookup_dcookie", "mbind", "mount",
	"mount_setattr", "move_mount", "move_pages", "name_to_handle_at", "nfsservctl",
	"open_by_handle_at", "open_tree", "perf_event_open", "pivot_root", "process_vm_readv",
	"process_vm_writev", "ptrace", "query_module", "quotactl", "quotactl_fd", "reboot",
	"request_key", "set_mempolicy", "setns", "settimeofday", "stime", "swapoff", "swapon",
	"syslog", "sysfs", "umount", "umount2", "unshare", "uselib", "userfaultfd", "ustat",
	"vm86", "vm86old",
}

// DefaultSeccomp is the filter apps get when their manifest says nothing:
// allow all but the default blocklist, and refuse clone with
// CLONE_NEWUSER (clone3 answers ENOSYS so libc falls back to clone, whose
// flags a filter can see).
func DefaultSeccomp() *specs.LinuxSeccomp {
	s := blocklist(DefaultSeccompBlocklist, uint(unix.EPERM))
	s.Syscalls = append(s.Syscalls,
		specs.LinuxSyscall{
			Names: []string{"clone"}, Action: specs.ActErrno, ErrnoRet: errnoPtr(uint(unix.EPERM)),
			Args: []specs.LinuxSeccompArg{{Index: 0, Value: unix.CLONE_NEWUSER, ValueTwo: unix.CLONE_NEWUSER, Op: specs.OpMaskedEqual}},
		},
		specs.LinuxSyscall{Names: []string{"clone3"}, Action: specs.ActErrno, ErrnoRet: errnoPtr(uint(unix.ENOSYS))},
	)
	return s
}

func errnoPtr(e uint) *uint { return &e }

// runtimeSyscalls are allowed in mode=retain whatever the list says: the
// filter is installed by libcontainer's init just before it execs the app,
// and the init (a Go program) makes these between the two.
var runtimeSyscalls = []string{
	"execve", "execveat", "openat", "open", "write", "read", "close", "fcntl",
	"futex", "nanosleep", "sched_yield", "rt_sigreturn", "rt_sigaction",
	"rt_sigprocmask", "sigaltstack", "madvise", "mmap", "munmap", "getpid",
	"gettid", "tgkill", "epoll_pwait", "epoll_ctl", "clock_gettime", "exit",
	"exit_group", "fstat", "newfstatat", "statx", "fstatfs", "statfs", "lseek",
	"readlinkat", "capget", "capset", "prctl", "getdents64",
}

func blocklist(names []string, errno uint) *specs.LinuxSeccomp {
	return &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32},
		Syscalls:      []specs.LinuxSyscall{{Names: names, Action: specs.ActErrno, ErrnoRet: errnoPtr(errno)}},
	}
}

// ParseSeccomp reads rkt's --seccomp: mode=remove|retain, then an
// optional errno=NAME, then system calls and sets, comma-separated.
// mode=remove blocks what is listed; mode=retain allows only what is
// listed. DefaultSeccompSet stands for the default blocklist.
func ParseSeccomp(s string) (*specs.LinuxSeccomp, error) {
	parts := strings.Split(s, ",")
	mode, ok := strings.CutPrefix(parts[0], "mode=")
	if !ok || (mode != "remove" && mode != "retain") {
		return nil, fmt.Errorf("--seccomp %q: start with mode=remove or mode=retain", s)
	}
	errno := uint(unix.EPERM)
	var names []string
	for _, p := range parts[1:] {
		switch {
		case strings.HasPrefix(p, "errno="):
			n := errnoByName(strings.TrimPrefix(p, "errno="))
			if n == 0 {
				return nil, fmt.Errorf("--seccomp %q: unknown errno %q", s, strings.TrimPrefix(p, "errno="))
			}
			errno = uint(n)
		case p == DefaultSeccompSet:
			names = append(names, DefaultSeccompBlocklist...)
		case strings.HasPrefix(p, "@"):
			return nil, fmt.Errorf("--seccomp %q: unknown set %q (%s)", s, p, DefaultSeccompSet)
		case p == "" || strings.Trim(p, "abcdefghijklmnopqrstuvwxyz0123456789_") != "":
			return nil, fmt.Errorf("--seccomp %q: %q is not a system call name", s, p)
		default:
			names = append(names, p)
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("--seccomp %q: no system calls listed", s)
	}
	if mode == "remove" {
		return blocklist(names, errno), nil
	}
	names = append(names, runtimeSyscalls...)
	return &specs.LinuxSeccomp{
		DefaultAction:   specs.ActErrno,
		DefaultErrnoRet: errnoPtr(errno),
		Architectures:   []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32},
		Syscalls:        []specs.LinuxSyscall{{Names: names, Action: specs.ActAllow}},
	}, nil
}

func errnoByName(name string) unix.Errno {
	for e := unix.Errno(1); e < 200; e++ {
		if unix.ErrnoName(e) == name {
			return e
		}
	}
	return 0
}
