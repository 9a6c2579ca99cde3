// Package cri serves the kubelet's Container Runtime Interface (runtime.v1
// of k8s.io/cri-api) over Orbit: a pod sandbox is a sandbox pod
// (pod.Manifest.Sandbox) run by stage1 in a process of its own, a
// container is an app added to it through stage1's control socket, and
// images are the store's. The server keeps no state of its own: what the
// CRI asks about beyond Orbit's pods (names, labels, annotations, configs,
// log paths) is written beside each pod in its directory (cri/), so a
// restarted server sees everything and running pods keep running.
package cri

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/orbit-pods/orbit/pod/state"
	"github.com/orbit-pods/orbit/stage0"
)

// RuntimeName and the versions Version reports.
const (
	RuntimeName       = "orbit"
	RuntimeAPIVersion = "v1"
	// kubeAPIVersion is the version of the CRI protocol itself.
	kubeAPIVersion = "0.1.0"
)

// Config is what the server works with.
type Config struct {
	Env *stage0.Env
	// Self is the orbit-cri binary: RunPodSandbox runs each pod as
	// `Self ... run-pod UUID` so that the pod outlives the server.
	Self string
	// SelfArgs are the global flags Self is given before run-pod.
	SelfArgs []string
	// Stage1Path overrides the configured stage1.
	Stage1Path string
	// Network is the CNI network pods get unless they ask for the
	// node's; "" or "none" is loopback only.
	Network       string
	NetConfigDir  string
	NetPluginDir  string
	InsecureHTTP  bool
	Mirrors       Mirrors
	StreamAddress string // host:port of the streaming server
	Version       string
}

// Server implements RuntimeService and ImageService.
type Server struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	runtimeapi.UnimplementedImageServiceServer
	cfg    Config
	stream *streamServer
	// usernsErr is why pods cannot have user namespaces of their own
	// here, nil when they can; probed once.
	usernsErr func() error
}

// New makes a server; Register puts it on a gRPC server.
func New(cfg Config) (*Server, error) {
	s := &Server{cfg: cfg}
	s.usernsErr = sync.OnceValue(s.probeUserNamespaces)
	if cfg.StreamAddress != "" {
		ss, err := newStreamServer(s, cfg.StreamAddress)
		if err != nil {
			return nil, err
		}
		s.stream = ss
	}
	return s, nil
}

// Register serves s's services on g.
func (s *Server) Register(g *grpc.Server) {
	runtimeapi.RegisterRuntimeServiceServer(g, s)
	runtimeapi.RegisterImageServiceServer(g, s)
}

// Serve runs the streaming server, if any, until ctx ends.
func (s *Server) Serve(ctx context.Context) error {
	if s.stream == nil {
		<-ctx.Done()
		return nil
	}
	return s.stream.serve(ctx)
}

// Version answers with Orbit's name and version.
func (s *Server) Version(ctx context.Context, req *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{
		Version:           kubeAPIVersion,
		RuntimeName:       RuntimeName,
		RuntimeVersion:    s.cfg.Version,
		RuntimeApiVersion: RuntimeAPIVersion,
	}, nil
}

// Status reports the runtime and its network ready: there is no daemon
// whose health could differ from this server's.
func (s *Server) Status(ctx context.Context, req *runtimeapi.StatusRequest) (*runtimeapi.StatusResponse, error) {
	return &runtimeapi.StatusResponse{Status: &runtimeapi.RuntimeStatus{Conditions: []*runtimeapi.RuntimeCondition{
		{Type: runtimeapi.RuntimeReady, Status: true},
		{Type: runtimeapi.NetworkReady, Status: true},
	}}, RuntimeHandlers: []*runtimeapi.RuntimeHandler{{
		Name:     "",
		Features: &runtimeapi.RuntimeHandlerFeatures{RecursiveReadOnlyMounts: true, UserNamespaces: s.usernsErr() == nil},
	}}, Features: &runtimeapi.RuntimeFeatures{SupplementalGroupsPolicy: true}}, nil
}

// RuntimeConfig reports the cgroup driver: Orbit makes cgroups itself.
func (s *Server) RuntimeConfig(ctx context.Context, req *runtimeapi.RuntimeConfigRequest) (*runtimeapi.RuntimeConfigResponse, error) {
	return &runtimeapi.RuntimeConfigResponse{Linux: &runtimeapi.LinuxRuntimeConfiguration{CgroupDriver: runtimeapi.CgroupDriver_CGROUPFS}}, nil
}

// UpdateRuntimeConfig takes the pod CIDR, which the configured CNI network
// has already.
func (s *Server) UpdateRuntimeConfig(ctx context.Context, req *runtimeapi.UpdateRuntimeConfigRequest) (*runtimeapi.UpdateRuntimeConfigResponse, error) {
	return &runtimeapi.UpdateRuntimeConfigResponse{}, nil
}

// grpcError maps Orbit's errors to gRPC codes.
func grpcError(what string, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	code := codes.Internal
	switch {
	case errors.Is(err, state.ErrNotFound), errors.Is(err, os.ErrNotExist):
		code = codes.NotFound
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, state.ErrLocked), errors.Is(err, stage0.ErrStillRunning):
		code = codes.FailedPrecondition
	}
	return status.Errorf(code, "%s: %v", what, err)
}

func invalid(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

func notFound(format string, args ...any) error {
	return status.Errorf(codes.NotFound, format, args...)
}

// matchID reports whether id is what filter names: all of it or a prefix,
// as crictl's short IDs are.
func matchID(id, filter string) bool {
	return filter == "" || strings.HasPrefix(id, filter)
}

func matchLabels(labels, selector map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}
