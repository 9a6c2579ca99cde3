// Command orbit-stage1 is the default stage1: stage0 execs it to run a pod,
// and calls it to collect a pod's leftovers. Its command line is the
// stage0/stage1 ABI (docs/stage1-abi.md):
//
//	orbit-stage1 run --pod-dir=DIR --lock-fd=N [--debug]
//	orbit-stage1 gc  --pod-dir=DIR [--debug]
//	orbit-stage1 enter --pod-dir=DIR --app=NAME [--] CMD [ARGS...]
//
// It is also libcontainer's container init ("orbit-stage1 init"), which runs
// before main through the nsenter constructor.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/opencontainers/runc/libcontainer"
	_ "github.com/opencontainers/runc/libcontainer/nsenter"

	"github.com/orbit-pods/orbit/pod"
	"github.com/orbit-pods/orbit/stage1"
)

// ABIVersion is the version of the stage0/stage1 interface this stage1
// speaks; stage0 passes the version it speaks and stage1 refuses others.
const ABIVersion = 1

func init() {
	if len(os.Args) > 1 && os.Args[1] == "init" {
		// libcontainer's container init: never returns.
		libcontainer.Init()
	}
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: orbit-stage1 run|gc --pod-dir=DIR ...")
		os.Exit(2)
	}
	verb := os.Args[1]
	fs := flag.NewFlagSet("orbit-stage1 "+verb, flag.ExitOnError)
	podDir := fs.String("pod-dir", "", "the pod directory")
	lockFD := fs.Int("lock-fd", -1, "descriptor of the locked pod directory (run)")
	abi := fs.Int("abi", ABIVersion, "stage0/stage1 ABI version the caller speaks")
	debug := fs.Bool("debug", false, "log what stage1 does to stderr")
	app := fs.String("app", "", "the app to enter (enter)")
	_ = fs.Parse(os.Args[2:])
	if *abi != ABIVersion {
		fail(fmt.Errorf("stage0 speaks ABI version %d, this stage1 speaks %d", *abi, ABIVersion))
	}
	if *podDir == "" {
		fail(fmt.Errorf("%s: --pod-dir is required", verb))
	}
	dir := pod.Dir(*podDir)
	switch verb {
	case "run":
		if *lockFD < 0 {
			fail(fmt.Errorf("run: --lock-fd is required"))
		}
		code, err := stage1.Run(context.Background(), stage1.Options{
			PodDir:   dir,
			Lock:     os.NewFile(uintptr(*lockFD), "pod-lock"),
			InitPath: siblingBinary(pod.InitBinary),
			Debug:    *debug,
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, "orbit-stage1:", err)
		}
		os.Exit(code)
	case "enter":
		if *app == "" || fs.NArg() == 0 {
			fail(fmt.Errorf("enter: --app and a command are required"))
		}
		code, err := stage1.Enter(dir, *app, fs.Args())
		if err != nil {
			fmt.Fprintln(os.Stderr, "orbit-stage1:", err)
		}
		os.Exit(code)
	case "gc":
		if err := stage1.GC(dir, filepath.Base(*podDir)); err != nil {
			fail(err)
		}
	case stage1.ReleaseNetNSVerb:
		// Run by stage1 itself, in the host's mount namespace (mntns.go).
		if err := stage1.ReleaseNetNS(dir); err != nil {
			fail(err)
		}
	case stage1.BindNetNSVerb:
		// Run by stage1 itself, in the host's mount namespace (mntns.go),
		// with the namespace to bind as descriptor 4.
		if err := stage1.BindNetNS(dir, os.NewFile(4, "netns")); err != nil {
			fail(err)
		}
	default:
		fail(fmt.Errorf("unknown verb %q", verb))
	}
}

// siblingBinary is a binary shipped with this stage1, in its directory: a
// stage1 flavor is a directory of binaries that travel together.
func siblingBinary(name string) string {
	exe, err := os.Executable()
	if err != nil {
		fail(fmt.Errorf("find own executable: %w", err))
	}
	if r, err := filepath.EvalSymlinks(exe); err == nil {
		exe = r
	}
	return filepath.Join(filepath.Dir(exe), name)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "orbit-stage1:", err)
	os.Exit(1)
}
