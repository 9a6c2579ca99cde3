package cri

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/orbit-pods/orbit/network"
	"github.com/orbit-pods/orbit/pod"
	"github.com/orbit-pods/orbit/stage0"
)

// readyTimeout bounds a sandbox's start: CNI ADD and the pod's init.
const readyTimeout = 2 * time.Minute

// checkHandler refuses a runtime handler other than the default.
func checkHandler(h string) error {
	if h != "" && h != RuntimeName {
		return invalid("runtime handler %q is not supported (orbit-cri has only the default handler, \"\" or %q)", h, RuntimeName)
	}
	return nil
}

// checkSandboxConfig refuses what no pod could be made of, before
// anything is made.
func checkSandboxConfig(cfg *runtimeapi.PodSandboxConfig) error {
	if cfg == nil {
		return invalid("no pod sandbox config given")
	}
	md := cfg.GetMetadata()
	if md == nil || md.Name == "" {
		return invalid("pod sandbox config: metadata with a name is required")
	}
	if r := cfg.GetLinux().GetResources(); r != nil {
		if err := checkResources("pod sandbox", r.CpuPeriod, r.CpuQuota, r.CpuShares, r.MemoryLimitInBytes); err != nil {
			return err
		}
	}
	for _, p := range cfg.PortMappings {
		if p.ContainerPort <= 0 || p.ContainerPort > 65535 || p.HostPort < 0 || p.HostPort > 65535 {
			return invalid("pod sandbox config: port mapping %d->%d is out of range", p.HostPort, p.ContainerPort)
		}
	}
	if err := checkAppArmor("pod sandbox config", cfg.GetLinux().GetSecurityContext().GetApparmor(), ""); err != nil {
		return err
	}
	if ns := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions(); ns != nil {
		if ns.Pid == runtimeapi.NamespaceMode_TARGET || ns.Ipc == runtimeapi.NamespaceMode_TARGET || ns.Network == runtimeapi.NamespaceMode_TARGET {
			return invalid("pod sandbox config: namespace mode TARGET is for containers, not sandboxes")
		}
		if ns.Ipc == runtimeapi.NamespaceMode_CONTAINER {
			return invalid("pod sandbox config: IPC namespace mode CONTAINER: a pod's containers share its IPC namespace or the node's")
		}
	}
	return nil
}

// minMemory is the least memory a limit may leave a pod or container:
// below it nothing starts (the kernel's own minimum is a page, but a
// container's setup alone takes more).
const minMemory = 4 << 20

// checkResources refuses limits the kernel would refuse or that leave
// nothing to run with.
func checkResources(what string, period, quota, shares, memory int64) error {
	switch {
	case memory < 0:
		return invalid("%s: memory limit %d is negative", what, memory)
	case memory > 0 && memory < minMemory:
		return invalid("%s: memory limit %d bytes is below the %d bytes anything needs to start", what, memory, minMemory)
	case period < 0 || (period > 0 && (period < 1000 || period > 1000000)):
		return invalid("%s: CPU period %dµs is out of the kernel's range (1000 to 1000000)", what, period)
	case quota < -1 || (quota > 0 && quota < 1000):
		return invalid("%s: CPU quota %dµs is below the kernel's minimum of 1000", what, quota)
	case shares < 0 || shares > 262144:
		return invalid("%s: CPU shares %d out of range (0 to 262144)", what, shares)
	}
	return nil
}

// RunPodSandbox makes a sandbox pod and runs it in a process of its own.
func (s *Server) RunPodSandbox(ctx context.Context, req *runtimeapi.RunPodSandboxRequest) (*runtimeapi.RunPodSandboxResponse, error) {
	if err := checkHandler(req.RuntimeHandler); err != nil {
		return nil, err
	}
	cfg := req.Config
	if err := checkSandboxConfig(cfg); err != nil {
		return nil, err
	}
	o := stage0.SandboxOptions{
		Hostname:    cfg.Hostname,
		Stage1Path:  s.cfg.Stage1Path,
		StopTimeout: 10 * time.Second,
		Net: stage0.NetOptions{
			ConfigDir: s.cfg.NetConfigDir,
			PluginDir: s.cfg.NetPluginDir,
		},
	}
	if o.Hostname != "" && !validHostname(o.Hostname) {
		return nil, invalid("pod sandbox config: hostname %q is not a valid host name", o.Hostname)
	}
	for k := range cfg.GetLinux().GetSysctls() {
		if !namespacedSysctl(k) {
			return nil, invalid("pod sandbox config: sysctl %q is not namespaced: it would change the node", k)
		}
	}
	o.Sysctls = cfg.GetLinux().GetSysctls()
	nsOpts := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions()
	hostNet := nsOpts.GetNetwork() == runtimeapi.NamespaceMode_NODE
	o.HostPID = nsOpts.GetPid() == runtimeapi.NamespaceMode_NODE
	o.HostIPC = nsOpts.GetIpc() == runtimeapi.NamespaceMode_NODE
	var err error
	if o.UserNamespace, err = s.sandboxUserNamespace(nsOpts); err != nil {
		return nil, err
	}
	for k := range o.Sysctls {
		if o.HostIPC && pod.IPCSysctl(k) {
			return nil, invalid("pod sandbox config: sysctl %q would change the node's IPC: the pod is in the node's IPC namespace", k)
		}
	}
	for k := range o.Sysctls {
		if hostNet && strings.HasPrefix(strings.ReplaceAll(k, "/", "."), "net.") {
			return nil, invalid("pod sandbox config: sysctl %q would change the node's network: the pod is in the node's network namespace", k)
		}
	}
	switch {
	case hostNet:
		o.Net.Nets = []string{pod.NetHost}
		if o.Hostname == "" {
			o.Hostname, _ = os.Hostname()
		}
	case s.cfg.Network != "" && s.cfg.Network != pod.NetNone:
		o.Net.Nets = []string{s.cfg.Network}
		for _, p := range cfg.PortMappings {
			if p.HostPort == 0 {
				continue
			}
			proto := strings.ToLower(p.Protocol.String())
			o.Net.Ports = append(o.Net.Ports, fmt.Sprintf("%d/%s:%d", p.ContainerPort, proto, p.HostPort))
		}
	}
	if d := cfg.DnsConfig; d != nil && len(d.Servers)+len(d.Searches)+len(d.Options) > 0 {
		for _, srv := range d.Servers {
			if net.ParseIP(srv) == nil {
				return nil, invalid("pod sandbox config: DNS server %q is not an IP address", srv)
			}
		}
		o.DNS = &pod.DNS{Servers: d.Servers, Search: d.Searches, Options: d.Options}
	}
	pd, _, err := s.cfg.Env.PrepareSandbox(ctx, o)
	if err != nil {
		if errors.Is(err, network.ErrInvalid) {
			return nil, invalid("pod sandbox: %v", err)
		}
		return nil, grpcError("prepare pod sandbox", err)
	}
	uuid := pd.UUID
	fail := func(err error) (*runtimeapi.RunPodSandboxResponse, error) {
		if cerr := s.destroyPod(uuid); cerr != nil {
			err = fmt.Errorf("%w (and removing the half-made pod: %v)", err, cerr)
		}
		return nil, grpcError("run pod sandbox", err)
	}
	if err := writeSandboxRecord(pd.Dir(), cfg, req.RuntimeHandler); err != nil {
		pd.Unlock()
		return fail(err)
	}
	logf, err := os.OpenFile(supervisorLog(pd.Dir()), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		pd.Unlock()
		return fail(err)
	}
	defer logf.Close()
	pd.Unlock()
	// The pod's supervisor is a process of its own, in a session of its
	// own, so that it outlives this server.
	args := append(append([]string(nil), s.cfg.SelfArgs...), RunPodVerb, uuid)
	cmd := exec.Command(s.cfg.Self, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fail(fmt.Errorf("start the pod's supervisor: %w", err))
	}
	go func() { _ = cmd.Wait() }() // reaped when the pod ends
	wctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	if _, err := s.cfg.Env.Status(wctx, uuid, false, true, 0); err != nil {
		if b, rerr := os.ReadFile(supervisorLog(pd.Dir())); rerr == nil && len(b) > 0 {
			err = fmt.Errorf("%w: %s", err, strings.TrimSpace(lastLines(string(b), 5)))
		} else if b, rerr := s.podLog(uuid); rerr == nil && len(b) > 0 {
			err = fmt.Errorf("%w: %s", err, strings.TrimSpace(lastLines(string(b), 5)))
		}
		return fail(err)
	}
	return &runtimeapi.RunPodSandboxResponse{PodSandboxId: uuid}, nil
}

// podLog reads the supervisor's log of a pod wherever its directory is now.
func (s *Server) podLog(uuid string) ([]byte, error) {
	pd, err := s.cfg.Env.FindPod(uuid)
	if err != nil {
		return nil, err
	}
	return os.ReadFile(supervisorLog(pd.Dir()))
}

func lastLines(s string, n int) string {
	ls := strings.Split(strings.TrimSpace(s), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}

// namespacedSysctl reports whether a sysctl belongs to the pod's own
// namespaces (net, ipc, uts), as runc's validation counts them.
func namespacedSysctl(k string) bool {
	k = strings.ReplaceAll(k, "/", ".")
	for _, p := range []string{"net.", "fs.mqueue.", "kernel.shm", "kernel.msg", "kernel.sem"} {
		if strings.HasPrefix(k, p) {
			return true
		}
	}
	return k == "kernel.hostname" || k == "kernel.domainname"
}

func validHostname(h string) bool {
	if len(h) > 253 {
		return false
	}
	for _, l := range strings.Split(h, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// RunPodVerb is orbit-cri's command that runs a prepared pod: the process
// becomes the pod's supervisor.
const RunPodVerb = "run-pod"

// stopPod stops a running pod and waits for it to be down.
func (s *Server) stopPod(ctx context.Context, uuid string, force bool) error {
	if _, err := s.cfg.Env.Stop(uuid, force); err != nil && !errors.Is(err, stage0.ErrNotRunning) {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	info, err := s.cfg.Env.Status(wctx, uuid, true, false, 0)
	if err != nil && info != nil && info.State == stage0.ShowPrepared {
		return nil // never started
	}
	return err
}

// destroyPod removes a pod in whatever state, killing it first.
func (s *Server) destroyPod(uuid string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.stopPod(ctx, uuid, true); err != nil {
		return err
	}
	return s.removePod(ctx, uuid)
}

// removePod removes a stopped pod. Its supervisor holds the pod's lock
// for a moment after the pod is recorded exited: that is waited for.
func (s *Server) removePod(ctx context.Context, uuid string) error {
	for {
		err := s.cfg.Env.Remove(uuid)
		if !errors.Is(err, stage0.ErrStillRunning) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// StopPodSandbox stops the pod: its apps get the pod's stop timeout, then
// are killed; the pod's network is released. Stopping a stopped or
// unknown sandbox succeeds.
func (s *Server) StopPodSandbox(ctx context.Context, req *runtimeapi.StopPodSandboxRequest) (*runtimeapi.StopPodSandboxResponse, error) {
	sb, err := s.findSandbox(req.PodSandboxId)
	if status.Code(err) == codes.NotFound {
		return &runtimeapi.StopPodSandboxResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	if err := s.stopPod(ctx, sb.pd.UUID, false); err != nil {
		return nil, grpcError("stop pod sandbox "+sb.pd.UUID, err)
	}
	return &runtimeapi.StopPodSandboxResponse{}, nil
}

// RemovePodSandbox removes the pod, stopping it first if it runs.
func (s *Server) RemovePodSandbox(ctx context.Context, req *runtimeapi.RemovePodSandboxRequest) (*runtimeapi.RemovePodSandboxResponse, error) {
	sb, err := s.findSandbox(req.PodSandboxId)
	if status.Code(err) == codes.NotFound {
		return &runtimeapi.RemovePodSandboxResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	if err := s.stopPod(ctx, sb.pd.UUID, true); err != nil {
		return nil, grpcError("stop pod sandbox "+sb.pd.UUID, err)
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := s.removePod(rctx, sb.pd.UUID); err != nil {
		return nil, grpcError("remove pod sandbox "+sb.pd.UUID, err)
	}
	return &runtimeapi.RemovePodSandboxResponse{}, nil
}

func (sb *sandbox) state() runtimeapi.PodSandboxState {
	if sb.running {
		return runtimeapi.PodSandboxState_SANDBOX_READY
	}
	return runtimeapi.PodSandboxState_SANDBOX_NOTREADY
}

func (sb *sandbox) podSandbox() *runtimeapi.PodSandbox {
	return &runtimeapi.PodSandbox{
		Id:             sb.pd.UUID,
		Metadata:       sb.cfg.Metadata,
		State:          sb.state(),
		CreatedAt:      nanos(sb.rec.Created),
		Labels:         sb.cfg.Labels,
		Annotations:    sb.cfg.Annotations,
		RuntimeHandler: sb.rec.RuntimeHandler,
	}
}

// PodSandboxStatus reports a sandbox's state and address.
func (s *Server) PodSandboxStatus(ctx context.Context, req *runtimeapi.PodSandboxStatusRequest) (*runtimeapi.PodSandboxStatusResponse, error) {
	sb, err := s.findSandbox(req.PodSandboxId)
	if err != nil {
		return nil, err
	}
	st := &runtimeapi.PodSandboxStatus{
		Id:             sb.pd.UUID,
		Metadata:       sb.cfg.Metadata,
		State:          sb.state(),
		CreatedAt:      nanos(sb.rec.Created),
		Labels:         sb.cfg.Labels,
		Annotations:    sb.cfg.Annotations,
		RuntimeHandler: sb.rec.RuntimeHandler,
		Network:        &runtimeapi.PodSandboxNetworkStatus{},
		Linux: &runtimeapi.LinuxPodSandboxStatus{Namespaces: &runtimeapi.Namespace{
			Options: sb.cfg.GetLinux().GetSecurityContext().GetNamespaceOptions(),
		}},
	}
	if sb.running {
		if as, err := network.ReadAttachments(sb.pd.Dir()); err == nil {
			var ips []string
			for _, a := range as {
				for _, ip := range a.IPs {
					if i, _, err := net.ParseCIDR(ip); err == nil {
						ips = append(ips, i.String())
					}
				}
			}
			if len(ips) > 0 {
				st.Network.Ip = ips[0]
				for _, ip := range ips[1:] {
					st.Network.AdditionalIps = append(st.Network.AdditionalIps, &runtimeapi.PodIP{Ip: ip})
				}
			}
		}
	}
	resp := &runtimeapi.PodSandboxStatusResponse{Status: st}
	if req.Verbose {
		pid, _ := os.ReadFile(sb.pd.Dir().PIDFile())
		resp.Info = map[string]string{"podDir": string(sb.pd.Dir()), "pid": strings.TrimSpace(string(pid)), "state": string(sb.pd.State)}
	}
	if req.Verbose {
		if cs, err := containersOf(sb); err == nil {
			resp.Info["containers"] = strconv.Itoa(len(cs))
		}
	}
	return resp, nil
}

// ListPodSandbox lists sandboxes, filtered as asked.
func (s *Server) ListPodSandbox(ctx context.Context, req *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	sbs, err := s.sandboxes()
	if err != nil {
		return nil, grpcError("list pod sandboxes", err)
	}
	f := req.Filter
	var out []*runtimeapi.PodSandbox
	for _, sb := range sbs {
		if f != nil {
			if !matchID(sb.pd.UUID, f.Id) || !matchLabels(sb.cfg.Labels, f.LabelSelector) {
				continue
			}
			if f.State != nil && f.State.State != sb.state() {
				continue
			}
		}
		out = append(out, sb.podSandbox())
	}
	return &runtimeapi.ListPodSandboxResponse{Items: out}, nil
}
