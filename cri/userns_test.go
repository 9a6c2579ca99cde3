package cri

import (
	"errors"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestSandboxUserNamespace(t *testing.T) {
	const pod, node, ctr, target = runtimeapi.NamespaceMode_POD, runtimeapi.NamespaceMode_NODE, runtimeapi.NamespaceMode_CONTAINER, runtimeapi.NamespaceMode_TARGET
	one := []*runtimeapi.IDMapping{{ContainerId: 0, HostId: 100000, Length: 65536}}
	two := []*runtimeapi.IDMapping{{ContainerId: 0, HostId: 100000, Length: 1000}, {ContainerId: 1000, HostId: 200000, Length: 1000}}
	from1 := []*runtimeapi.IDMapping{{ContainerId: 1, HostId: 100000, Length: 65536}}
	userns := func(mode runtimeapi.NamespaceMode, uids, gids []*runtimeapi.IDMapping) *runtimeapi.NamespaceOption {
		return &runtimeapi.NamespaceOption{UsernsOptions: &runtimeapi.UserNamespace{Mode: mode, Uids: uids, Gids: gids}}
	}
	hostNet := userns(pod, one, one)
	hostNet.Network = node
	s := &Server{usernsErr: func() error { return nil }}
	for name, c := range map[string]struct {
		ns   *runtimeapi.NamespaceOption
		code codes.Code
		pod  bool
	}{
		"none given":         {nil, codes.OK, false},
		"node":               {userns(node, nil, nil), codes.OK, false},
		"pod":                {userns(pod, one, one), codes.OK, true},
		"node with mappings": {userns(node, one, one), codes.InvalidArgument, false},
		"two mappings":       {userns(pod, two, one), codes.InvalidArgument, false},
		"root unmapped":      {userns(pod, one, from1), codes.InvalidArgument, false},
		"no gid mappings":    {userns(pod, one, nil), codes.InvalidArgument, false},
		"container":          {userns(ctr, nil, nil), codes.InvalidArgument, false},
		"target":             {userns(target, nil, nil), codes.InvalidArgument, false},
		"node's network":     {hostNet, codes.InvalidArgument, false},
	} {
		u, err := s.sandboxUserNamespace(c.ns)
		if status.Code(err) != c.code || (u != nil) != c.pod {
			t.Errorf("%s: %v, %v; want %v and a user namespace %v", name, u, err, c.code, c.pod)
		}
		if u != nil && (u.UIDMappings[0].HostID != 100000 || u.GIDMappings[0].Size != 65536) {
			t.Errorf("%s: mappings %+v", name, u)
		}
	}
	// A node that cannot map layers says so.
	s.usernsErr = func() error { return errors.New("kernel 5.10") }
	if _, err := s.sandboxUserNamespace(userns(pod, one, one)); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("no idmapped mounts: %v, want FailedPrecondition", err)
	}
}

func TestContainerUserNamespaceAndMounts(t *testing.T) {
	one := []*runtimeapi.IDMapping{{ContainerId: 0, HostId: 100000, Length: 65536}}
	other := []*runtimeapi.IDMapping{{ContainerId: 0, HostId: 300000, Length: 65536}}
	sb := func(u *runtimeapi.UserNamespace) *runtimeapi.PodSandboxConfig {
		return &runtimeapi.PodSandboxConfig{Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{UsernsOptions: u}}}}
	}
	podNS := &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: one, Gids: one}
	if err := checkContainerUserNamespace(sb(podNS), &runtimeapi.NamespaceOption{UsernsOptions: podNS}); err != nil {
		t.Errorf("the pod's own: %v", err)
	}
	if err := checkContainerUserNamespace(sb(podNS), &runtimeapi.NamespaceOption{}); err != nil {
		t.Errorf("none given: %v", err)
	}
	nodeNS := &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_NODE}
	if err := checkContainerUserNamespace(sb(podNS), &runtimeapi.NamespaceOption{UsernsOptions: nodeNS}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("the node's in a pod's: %v", err)
	}
	if err := checkContainerUserNamespace(sb(nil), &runtimeapi.NamespaceOption{UsernsOptions: nodeNS}); err != nil {
		t.Errorf("the node's, in a sandbox that named none: %v", err)
	}
	if err := checkContainerUserNamespace(sb(nil), &runtimeapi.NamespaceOption{UsernsOptions: podNS}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("the pod's, in a sandbox that named none: %v", err)
	}
	for name, c := range map[string]struct {
		sb     *runtimeapi.PodSandboxConfig
		m      *runtimeapi.Mount
		mapped bool
		code   codes.Code
	}{
		"plain":             {sb(podNS), &runtimeapi.Mount{ContainerPath: "/m"}, false, codes.OK},
		"pod's mappings":    {sb(podNS), &runtimeapi.Mount{ContainerPath: "/m", UidMappings: one, GidMappings: one}, true, codes.OK},
		"other mappings":    {sb(podNS), &runtimeapi.Mount{ContainerPath: "/m", UidMappings: other, GidMappings: other}, false, codes.InvalidArgument},
		"no user namespace": {sb(nil), &runtimeapi.Mount{ContainerPath: "/m", UidMappings: one, GidMappings: one}, false, codes.InvalidArgument},
	} {
		mapped, err := mountIDMapped(c.sb, c.m)
		if mapped != c.mapped || status.Code(err) != c.code {
			t.Errorf("%s: %v, %v; want %v, %v", name, mapped, err, c.mapped, c.code)
		}
	}
}
