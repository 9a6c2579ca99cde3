package cri

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/orbit-pods/orbit/pod"
)

// Stats come from the cgroups of a process: an app's, or the pod's init's
// parent (the pod's cgroup). Both cgroup v1 (memory, cpuacct) and v2 are
// read.

// cgroupPaths maps a process's cgroup controllers (v1) or "" (v2) to
// their directories under /sys/fs/cgroup.
func cgroupPaths(pid int) map[string]string {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return nil
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[1] == "" {
			if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
				out[""] = filepath.Join("/sys/fs/cgroup", parts[2])
			}
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			out[c] = filepath.Join("/sys/fs/cgroup", parts[1], parts[2])
		}
	}
	return out
}

func readUint(file string) (uint64, bool) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return n, err == nil
}

func readKey(file, key string) (uint64, bool) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, key+" "); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// usage reads CPU (ns) and memory (bytes) of the cgroups in paths, up
// levels above the process's own.
func usage(paths map[string]string, up int) (*runtimeapi.CpuUsage, *runtimeapi.MemoryUsage) {
	now := time.Now().UnixNano()
	lift := func(p string) string {
		for i := 0; i < up; i++ {
			p = filepath.Dir(p)
		}
		return p
	}
	cpu := &runtimeapi.CpuUsage{Timestamp: now}
	mem := &runtimeapi.MemoryUsage{Timestamp: now}
	if p, ok := paths["cpuacct"]; ok {
		if n, ok := readUint(filepath.Join(lift(p), "cpuacct.usage")); ok {
			cpu.UsageCoreNanoSeconds = &runtimeapi.UInt64Value{Value: n}
		}
	} else if p, ok := paths[""]; ok {
		if n, ok := readKey(filepath.Join(lift(p), "cpu.stat"), "usage_usec"); ok {
			cpu.UsageCoreNanoSeconds = &runtimeapi.UInt64Value{Value: n * 1000}
		}
	}
	var usageBytes, inactive uint64
	var ok bool
	if p, has := paths["memory"]; has {
		usageBytes, ok = readUint(filepath.Join(lift(p), "memory.usage_in_bytes"))
		inactive, _ = readKey(filepath.Join(lift(p), "memory.stat"), "total_inactive_file")
	} else if p, has := paths[""]; has {
		usageBytes, ok = readUint(filepath.Join(lift(p), "memory.current"))
		inactive, _ = readKey(filepath.Join(lift(p), "memory.stat"), "inactive_file")
	}
	if ok {
		ws := usageBytes
		if inactive < ws {
			ws -= inactive
		}
		mem.UsageBytes = &runtimeapi.UInt64Value{Value: usageBytes}
		mem.WorkingSetBytes = &runtimeapi.UInt64Value{Value: ws}
	}
	return cpu, mem
}

func (c *container) stats() *runtimeapi.ContainerStats {
	cs := &runtimeapi.ContainerStats{Attributes: &runtimeapi.ContainerAttributes{
		Id: c.id(), Metadata: c.cfg.Metadata, Labels: c.cfg.Labels, Annotations: c.cfg.Annotations,
	}}
	now := time.Now().UnixNano()
	cs.Cpu = &runtimeapi.CpuUsage{Timestamp: now, UsageCoreNanoSeconds: &runtimeapi.UInt64Value{}}
	cs.Memory = &runtimeapi.MemoryUsage{Timestamp: now, WorkingSetBytes: &runtimeapi.UInt64Value{}}
	if c.st.State == pod.AppRunning && c.st.PID > 0 {
		cs.Cpu, cs.Memory = usage(cgroupPaths(c.st.PID), 0)
	}
	cs.WritableLayer = &runtimeapi.FilesystemUsage{
		Timestamp: now,
		FsId:      &runtimeapi.FilesystemIdentifier{Mountpoint: c.sb.pd.Dir().Upper(c.app)},
		UsedBytes: &runtimeapi.UInt64Value{Value: dirSize(c.sb.pd.Dir().Upper(c.app))},
	}
	return cs
}

func dirSize(dir string) uint64 {
	var n uint64
	_ = filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += uint64(fi.Size())
		}
		return nil
	})
	return n
}

// ContainerStats reports one container's usage.
func (s *Server) ContainerStats(ctx context.Context, req *runtimeapi.ContainerStatsRequest) (*runtimeapi.ContainerStatsResponse, error) {
	c, err := s.findContainer(req.ContainerId)
	if err != nil {
		return nil, err
	}
	return &runtimeapi.ContainerStatsResponse{Stats: c.stats()}, nil
}

// ListContainerStats reports the usage of the containers asked for.
func (s *Server) ListContainerStats(ctx context.Context, req *runtimeapi.ListContainerStatsRequest) (*runtimeapi.ListContainerStatsResponse, error) {
	sbs, err := s.sandboxes()
	if err != nil {
		return nil, grpcError("list pod sandboxes", err)
	}
	f := req.Filter
	var out []*runtimeapi.ContainerStats
	for _, sb := range sbs {
		if f != nil && !matchID(sb.pd.UUID, f.PodSandboxId) {
			continue
		}
		cs, _ := containersOf(sb)
		for _, c := range cs {
			if f != nil && (!matchID(c.id(), f.Id) || !matchLabels(c.cfg.Labels, f.LabelSelector)) {
				continue
			}
			out = append(out, c.stats())
		}
	}
	return &runtimeapi.ListContainerStatsResponse{Stats: out}, nil
}

func (s *Server) sandboxStats(sb *sandbox) *runtimeapi.PodSandboxStats {
	st := &runtimeapi.PodSandboxStats{
		Attributes: &runtimeapi.PodSandboxAttributes{Id: sb.pd.UUID, Metadata: sb.cfg.Metadata, Labels: sb.cfg.Labels, Annotations: sb.cfg.Annotations},
		Linux:      &runtimeapi.LinuxPodSandboxStats{},
	}
	if sb.running {
		if b, err := os.ReadFile(sb.pd.Dir().PIDFile()); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				// The init's cgroup is the pod's "init": the pod's is its parent.
				st.Linux.Cpu, st.Linux.Memory = usage(cgroupPaths(pid), 1)
			}
		}
	}
	cs, _ := containersOf(sb)
	for _, c := range cs {
		st.Linux.Containers = append(st.Linux.Containers, c.stats())
	}
	return st
}

// PodSandboxStats reports one sandbox's usage.
func (s *Server) PodSandboxStats(ctx context.Context, req *runtimeapi.PodSandboxStatsRequest) (*runtimeapi.PodSandboxStatsResponse, error) {
	sb, err := s.findSandbox(req.PodSandboxId)
	if err != nil {
		return nil, err
	}
	return &runtimeapi.PodSandboxStatsResponse{Stats: s.sandboxStats(sb)}, nil
}

// ListPodSandboxStats reports the usage of the sandboxes asked for.
func (s *Server) ListPodSandboxStats(ctx context.Context, req *runtimeapi.ListPodSandboxStatsRequest) (*runtimeapi.ListPodSandboxStatsResponse, error) {
	sbs, err := s.sandboxes()
	if err != nil {
		return nil, grpcError("list pod sandboxes", err)
	}
	f := req.Filter
	var out []*runtimeapi.PodSandboxStats
	for _, sb := range sbs {
		if f != nil && (!matchID(sb.pd.UUID, f.Id) || !matchLabels(sb.cfg.Labels, f.LabelSelector)) {
			continue
		}
		out = append(out, s.sandboxStats(sb))
	}
	return &runtimeapi.ListPodSandboxStatsResponse{Stats: out}, nil
}
