package stage1

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/orbit-pods/orbit/metadata"
	"github.com/orbit-pods/orbit/network"
	"github.com/orbit-pods/orbit/pod"
)

// A pod whose manifest names a metadata service is registered with it once
// its networks are up (the service learns the pod's addresses and refuses
// requests from others) and before any app starts, since each app's
// environment carries the URL with the pod's token: AC_METADATA_URL is
// http://<the host as the pod reaches it>:<port>/<token>. The host is the
// gateway of the pod's first network, or loopback for a pod in the host's
// network (--net=host, or the fly flavor). The pod is unregistered at teardown.

// mdsState is the pod's registration.
type mdsState struct {
	client *metadata.Client
	url    string
}

// registerMDS registers the pod, when its manifest asks for it.
func (s *supervisor) registerMDS() error {
	if s.m.MetadataService == nil {
		return nil
	}
	b, err := os.ReadFile(s.dir.MDSRegistrationFile())
	if err != nil {
		return fmt.Errorf("metadata service registration: %w", err)
	}
	var reg metadata.Registration
	if err := json.Unmarshal(b, &reg); err != nil {
		return fmt.Errorf("metadata service registration %s: %w", s.dir.MDSRegistrationFile(), err)
	}
	host := "127.0.0.1"
	if s.m.NetMode() == pod.NetCNI {
		as, err := network.ReadAttachments(s.dir)
		if err != nil {
			return err
		}
		host = ""
		for _, a := range as {
			if a.Result == nil {
				continue
			}
			for _, ipc := range a.Result.IPs {
				reg.IPs = append(reg.IPs, ipc.Address.IP.String())
				if host == "" && ipc.Gateway != nil {
					host = ipc.Gateway.String()
				}
			}
		}
		if host == "" {
			return fmt.Errorf("metadata service: the pod's networks give it no gateway to reach the host's metadata service on")
		}
	} else if s.m.NetMode() != pod.NetHost && s.m.Flavor != pod.FlavorFly {
		return fmt.Errorf("metadata service: a pod without a network (--net) cannot reach it")
	}
	c := metadata.NewClient(s.m.MetadataService.Socket)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := c.Register(ctx, &reg)
	if err != nil {
		return err
	}
	s.mds = &mdsState{client: c, url: "http://" + net.JoinHostPort(host, strconv.Itoa(r.Port)) + "/" + r.Token}
	s.logf("registered with the metadata service at %s", s.m.MetadataService.Socket)
	return nil
}

// mdsEnv gives an app's process (and its event handlers) AC_METADATA_URL.
func (s *supervisor) mdsEnv(spec *specs.Spec) {
	if s.mds == nil || spec.Process == nil {
		return
	}
	spec.Process.Env = append(spec.Process.Env, "AC_METADATA_URL="+s.mds.url)
}

// unregisterMDS forgets the pod at the service: its token stops working.
// A service that went away meanwhile has forgotten it already, so a
// failure is said but does not change how the pod ended.
func (s *supervisor) unregisterMDS() {
	if s.mds == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.mds.client.Unregister(ctx, s.m.UUID); err != nil {
		fmt.Fprintf(os.Stderr, "stage1: %v\n", err)
	}
	s.mds = nil
}
