package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	units "github.com/docker/go-units"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/orbit-pods/orbit/metadata"
	"github.com/orbit-pods/orbit/pod"
	"github.com/orbit-pods/orbit/pod/state"
	"github.com/orbit-pods/orbit/stage0"
)

// podFlags are the flags of run and prepare that describe the pod.
type podFlags struct {
	o                      stage0.PrepareOptions
	setEnv, setEnvFile     []string
	inheritEnv             bool
	volumes, hostsEntries  []string
	dns, dnsSearch, dnsOpt []string
	uuidFileSave           string
	podManifest            string
	noOverlay              bool
	sandbox                bool
	logMaxSize             string
	logMaxFiles            int
	privateUsers           string
}

func (pf *podFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.SetInterspersed(false) // flags after the image are the app's
	f.StringVar(&pf.o.Hostname, "hostname", "", "pod hostname (default orbit-<uuid prefix>)")
	f.DurationVar(&pf.o.StopTimeout, "stop-timeout", stage0.DefaultStopTimeout, "how long apps get to exit after SIGTERM before they are killed")
	f.StringVar(&pf.o.Stage1Name, "stage1-name", "", "stage1 flavor, as configured in stage1.d")
	f.StringVar(&pf.o.Stage1Path, "stage1-path", "", "path of the stage1 binary to use")
	f.StringArrayVar(&pf.setEnv, "set-env", nil, "environment variable K=V for every app (repeat)")
	f.StringArrayVar(&pf.setEnvFile, "set-env-file", nil, "file of K=V lines for every app's environment")
	f.BoolVar(&pf.inheritEnv, "inherit-env", false, "give the apps orbit's own environment")
	f.StringArrayVar(&pf.volumes, "volume", nil, "NAME,kind=host,source=PATH[,readOnly=true] or NAME,kind=empty[,mode=0755,uid=N,gid=N]")
	f.StringSliceVar(&pf.dns, "dns", nil, `name servers for the apps' resolv.conf ("host" copies the host's)`)
	f.StringSliceVar(&pf.dnsSearch, "dns-search", nil, "search domains for resolv.conf")
	f.StringSliceVar(&pf.dnsOpt, "dns-opt", nil, "options for resolv.conf")
	f.StringArrayVar(&pf.hostsEntries, "hosts-entry", nil, "IP=NAME[,NAME...] line for the apps' /etc/hosts (repeat)")
	f.StringVar(&pf.uuidFileSave, "uuid-file-save", "", "write the pod's UUID to this file")
	f.BoolVar(&pf.o.Interactive, "interactive", false, "give the (only) app orbit's stdin, and a terminal when stdin is one")
	f.BoolVar(&pf.noOverlay, "no-overlay", false, "give each app a copy of its image as its root instead of an overlay of its layers")
	f.StringVar(&pf.podManifest, "pod-manifest", "", "run the pod this pod manifest file describes, instead of images and flags")
	f.BoolVar(&pf.sandbox, "sandbox", false, "make a sandbox pod: no images, it runs until stopped and takes apps with `orbit app`")
	f.BoolVar(&pf.o.MDSRegister, "mds-register", false, "register the pod with the metadata service (orbit metadata-service): its apps get AC_METADATA_URL")
	f.StringVar(&pf.o.MDSSocket, "mds-socket", metadata.DefaultSocket, "the metadata service's registration socket")
	f.StringVar(&pf.logMaxSize, "log-max-size", "", "rotate each app's log file at this size (e.g. 10M; default 10M)")
	f.IntVar(&pf.logMaxFiles, "log-max-files", 0, "log files kept per app, the current one included (default 5)")
	f.StringVar(&pf.privateUsers, "private-users", "", "run the pod in a user namespace: its IDs from 0 are the host's from HOSTID (HOSTID[:SIZE], SIZE 65536 when not given)")
	registerNetFlags(f, &pf.o.Net)
}

// options turns the flags and the app arguments into PrepareOptions.
func (pf *podFlags) options(args []string) (stage0.PrepareOptions, error) {
	o := pf.o
	if len(args) > 0 { // none for a sandbox
		apps, err := parseApps(args)
		if err != nil {
			return o, err
		}
		o.Apps = apps
	}
	if pf.logMaxSize != "" || pf.logMaxFiles != 0 {
		o.Log = &pod.AppLog{MaxFiles: pf.logMaxFiles}
		if pf.logMaxSize != "" {
			n, err := units.RAMInBytes(pf.logMaxSize)
			if err != nil || n <= 0 {
				return o, fmt.Errorf("--log-max-size %q: want a size such as 512K or 10M", pf.logMaxSize)
			}
			o.Log.MaxSize = n
		}
		if pf.logMaxFiles < 0 {
			return o, fmt.Errorf("--log-max-files %d: want a count of at least 1", pf.logMaxFiles)
		}
	}
	if pf.privateUsers != "" {
		u, err := stage0.ParsePrivateUsers(pf.privateUsers)
		if err != nil {
			return o, err
		}
		o.UserNamespace = u
	}
	if pf.inheritEnv {
		o.Env = append(o.Env, os.Environ()...)
	}
	for _, f := range pf.setEnvFile {
		env, err := stage0.ReadEnvFile(f)
		if err != nil {
			return o, err
		}
		o.Env = append(o.Env, env...)
	}
	for _, kv := range pf.setEnv {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return o, fmt.Errorf("--set-env %q: want K=V", kv)
		}
		o.Env = append(o.Env, kv)
	}
	for _, v := range pf.volumes {
		vol, err := stage0.ParseVolume(v)
		if err != nil {
			return o, err
		}
		o.Volumes = append(o.Volumes, vol)
	}
	for _, h := range pf.hostsEntries {
		he, err := stage0.ParseHostsEntry(h)
		if err != nil {
			return o, err
		}
		o.HostsEntries = append(o.HostsEntries, he)
	}
	switch {
	case len(pf.dns) == 1 && pf.dns[0] == "host":
		if len(pf.dnsSearch)+len(pf.dnsOpt) > 0 {
			return o, fmt.Errorf("--dns=host copies the host's resolv.conf: it takes no --dns-search or --dns-opt")
		}
		o.DNS = &pod.DNS{HostResolvConf: true}
	case len(pf.dns)+len(pf.dnsSearch)+len(pf.dnsOpt) > 0:
		for _, s := range pf.dns {
			if net.ParseIP(s) == nil {
				return o, fmt.Errorf("--dns %q is not an IP address", s)
			}
		}
		o.DNS = &pod.DNS{Servers: pf.dns, Search: pf.dnsSearch, Options: pf.dnsOpt}
	}
	return o, nil
}

// prepare makes the pod and saves its UUID where asked.
func (pf *podFlags) prepare(cmd *cobra.Command, g *globalFlags, args []string) (*state.Pod, *pod.Manifest, error) {
	var pd *state.Pod
	var m *pod.Manifest
	if pf.sandbox {
		var err error
		if pd, m, err = pf.prepareSandbox(cmd, g, args); err != nil {
			return nil, nil, err
		}
	} else if pf.podManifest != "" {
		if err := pf.manifestOnly(cmd, args); err != nil {
			return nil, nil, usageError{err}
		}
		var err error
		pd, m, err = g.env.PrepareManifest(cmd.Context(), pf.podManifest, stage0.ManifestOptions{
			Stage1Name:  pf.o.Stage1Name,
			Stage1Path:  pf.o.Stage1Path,
			Interactive: pf.o.Interactive,
			NoOverlay:   pf.noOverlay,
		})
		if err != nil {
			return nil, nil, err
		}
	} else {
		if len(args) == 0 {
			return nil, nil, usageError{errors.New("no image given (or --pod-manifest)")}
		}
		o, err := pf.options(args)
		if err != nil {
			return nil, nil, usageError{err}
		}
		o.NoSeccomp = g.insecure("seccomp")
		o.NoOverlay = pf.noOverlay
		pd, m, err = g.env.Prepare(cmd.Context(), o)
		if err != nil {
			return nil, nil, err
		}
	}
	if pf.uuidFileSave != "" {
		if err := os.WriteFile(pf.uuidFileSave, []byte(pd.UUID+"\n"), 0o644); err != nil {
			_ = pd.Remove()
			return nil, nil, fmt.Errorf("--uuid-file-save: %w", err)
		}
	}
	return pd, m, nil
}

// manifestOnly refuses what --pod-manifest cannot be combined with: the
// file describes the whole pod.
func (pf *podFlags) manifestOnly(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("--pod-manifest describes the whole pod: no images on the command line (got %q)", args[0])
	}
	allowed := map[string]bool{"pod-manifest": true, "stage1-name": true, "stage1-path": true,
		"uuid-file-save": true, "interactive": true, "no-overlay": true}
	var bad string
	cmd.LocalFlags().VisitAll(func(f *pflag.Flag) {
		if f.Changed && !allowed[f.Name] && bad == "" {
			bad = f.Name
		}
	})
	if bad != "" {
		return fmt.Errorf("--%s cannot be combined with --pod-manifest (say it in the manifest)", bad)
	}
	return nil
}

const appUsage = "IMAGE [--exec=CMD] [--user=U] [--group=G] [--name=NAME] [--working-dir=DIR] [--mount=volume=V,target=PATH] [--memory=SIZE] [--cpu=CORES] [--caps-retain=CAPS|--caps-remove=CAPS] [--readonly-rootfs] [-- ARGS...] [--- IMAGE ...]"

func runCommand(g *globalFlags) *cobra.Command {
	var pf podFlags
	cmd := &cobra.Command{
		Use:   "run [flags] " + appUsage,
		Short: "Run a pod in the foreground: this process becomes its supervisor",
		Long: `Run a pod of one or more apps. Each app is an image (a name in the store, or
a source such as oci-archive:FILE that is fetched first) followed by its own
flags and, after --, its arguments; --- separates apps.

orbit run execs stage1, so the process that ran it supervises the pod and
exits with the app's exit status (125 when orbit itself fails).`,
		Args: cobra.ArbitraryArgs, // images, or none with --pod-manifest
		RunE: func(cmd *cobra.Command, args []string) error {
			pd, m, err := pf.prepare(cmd, g, args)
			if err != nil {
				var ue usageError
				if errors.As(err, &ue) {
					return err
				}
				fmt.Fprintln(os.Stderr, "orbit:", err)
				return exitError{runtimeErrorStatus}
			}
			if err := g.env.RunPrepared(pd, m.Stage1); err != nil {
				fmt.Fprintln(os.Stderr, "orbit:", err)
				return exitError{runtimeErrorStatus}
			}
			return nil // not reached: stage1 replaced this process
		},
	}
	pf.register(cmd)
	return cmd
}

func prepareCommand(g *globalFlags) *cobra.Command {
	var pf podFlags
	cmd := &cobra.Command{
		Use:   "prepare [flags] " + appUsage,
		Short: "Prepare a pod to run later with run-prepared; prints its UUID",
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			pd, _, err := pf.prepare(cmd, g, args)
			if err != nil {
				return err
			}
			pd.Unlock()
			fmt.Println(pd.UUID)
			return nil
		},
	}
	pf.register(cmd)
	return cmd
}

func runPreparedCommand(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "run-prepared UUID",
		Short: "Run a prepared pod in the foreground",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := g.env.RunPreparedUUID(args[0]); err != nil {
				fmt.Fprintln(os.Stderr, "orbit:", err)
				return exitError{runtimeErrorStatus}
			}
			return nil
		},
	}
}

// parseApps splits `IMAGE [app flags] [-- args] [--- IMAGE ...]`.
func parseApps(args []string) ([]stage0.AppOptions, error) {
	var chunks [][]string
	cur := []string{}
	for _, a := range args {
		if a == "---" {
			chunks = append(chunks, cur)
			cur = []string{}
			continue
		}
		cur = append(cur, a)
	}
	chunks = append(chunks, cur)
	var out []stage0.AppOptions
	for _, c := range chunks {
		if len(c) == 0 {
			return nil, fmt.Errorf("empty app between ---")
		}
		if c[0] == "" || c[0][0] == '-' {
			return nil, fmt.Errorf("expected an image, got %q", c[0])
		}
		ao := stage0.AppOptions{Image: c[0]}
		fs := pflag.NewFlagSet(c[0], pflag.ContinueOnError)
		fs.SetInterspersed(false)
		fs.SetOutput(nilWriter{})
		fs.StringVar(&ao.Exec, "exec", "", "command to run instead of the image's entrypoint")
		fs.StringVar(&ao.User, "user", "", "user to run as (name or uid)")
		fs.StringVar(&ao.Group, "group", "", "group to run as (name or gid)")
		fs.StringVar(&ao.Name, "name", "", "app name (default from the image name)")
		fs.StringVar(&ao.WorkingDir, "working-dir", "", "working directory of the app")
		fs.BoolVar(&ao.ReadOnlyRootfs, "readonly-rootfs", false, "mount the app's root filesystem read-only")
		var mounts []string
		var memory, cpu, capsRetain, capsRemove, seccomp string
		fs.StringVar(&seccomp, "seccomp", "", "mode=remove|retain[,errno=NAME],SYSCALL|@orbit/default-blocklist,...")
		fs.StringArrayVar(&mounts, "mount", nil, "volume=NAME,target=PATH[,readOnly=true] (repeat)")
		fs.StringVar(&memory, "memory", "", "memory limit (256M, 1G)")
		fs.StringVar(&cpu, "cpu", "", "CPU limit in cores (0.5) or millicores (500m)")
		fs.StringVar(&capsRetain, "caps-retain", "", "the only capabilities the app keeps")
		fs.StringVar(&capsRemove, "caps-remove", "", "capabilities to take from the default set")
		if err := fs.Parse(c[1:]); err != nil {
			return nil, fmt.Errorf("app %s: %w", c[0], err)
		}
		for _, m := range mounts {
			mp, err := stage0.ParseMount(m)
			if err != nil {
				return nil, fmt.Errorf("app %s: %w", c[0], err)
			}
			ao.Mounts = append(ao.Mounts, mp)
		}
		var err error
		if memory != "" {
			if ao.Memory, err = stage0.ParseMemory(memory); err != nil {
				return nil, fmt.Errorf("app %s: %w", c[0], err)
			}
		}
		if cpu != "" {
			if ao.CPUQuota, ao.CPUPeriod, err = stage0.ParseCPU(cpu); err != nil {
				return nil, fmt.Errorf("app %s: %w", c[0], err)
			}
		}
		if capsRetain != "" && capsRemove != "" {
			return nil, fmt.Errorf("app %s: --caps-retain and --caps-remove exclude each other", c[0])
		}
		if fs.Changed("caps-retain") {
			if ao.CapsRetain, err = stage0.ParseCaps("--caps-retain", capsRetain); err != nil {
				return nil, fmt.Errorf("app %s: %w", c[0], err)
			}
			if ao.CapsRetain == nil {
				ao.CapsRetain = []string{}
			}
		}
		if seccomp != "" {
			if ao.Seccomp, err = pod.ParseSeccomp(seccomp); err != nil {
				return nil, fmt.Errorf("app %s: %w", c[0], err)
			}
		}
		if capsRemove != "" {
			if ao.CapsRemove, err = stage0.ParseCaps("--caps-remove", capsRemove); err != nil {
				return nil, fmt.Errorf("app %s: %w", c[0], err)
			}
		}
		rest := fs.Args()
		if len(rest) > 0 && fs.ArgsLenAtDash() != 0 {
			return nil, fmt.Errorf("app %s: unexpected argument %q (app arguments go after --)", c[0], rest[0])
		}
		if fs.ArgsLenAtDash() == 0 {
			ao.Args, ao.HasArgs = rest, true
		}
		out = append(out, ao)
	}
	return out, nil
}

type nilWriter struct{}

func (nilWriter) Write(p []byte) (int, error) { return len(p), nil }

func gcCommand(g *globalFlags) *cobra.Command {
	o := stage0.GCOptions{Log: os.Stdout}
	cmd := &cobra.Command{
		Use:   "gc",
		Short: "Remove exited pods and pods whose supervisor died",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.env.GC(cmd.Context(), o)
		},
	}
	cmd.Flags().DurationVar(&o.GracePeriod, "grace-period", 30*time.Minute, "how long exited pods are kept")
	cmd.Flags().DurationVar(&o.ExpirePrepared, "expire-prepared", 24*time.Hour, "how long prepared pods that never ran are kept")
	return cmd
}
