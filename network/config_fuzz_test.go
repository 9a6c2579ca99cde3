package network

import (
	"testing"

	"github.com/orbit-pods/orbit/pod"
)

// --port never panics, and what it accepts is a real port mapping.
func FuzzParsePort(f *testing.F) {
	for _, s := range []string{"80:8080", "53/udp:5353", "http-tcp:80", "0:1", "65536:1", "1/sctp:2", ":", "80/:1"} {
		f.Add(s)
	}
	exposed := map[string]pod.PortMapping{"http-tcp": {ContainerPort: 80, Protocol: "tcp"}}
	f.Fuzz(func(t *testing.T, s string) {
		pm, err := ParsePort(s, exposed)
		if err != nil {
			return
		}
		if pm.HostPort < 1 || pm.HostPort > 65535 || pm.ContainerPort < 1 || pm.ContainerPort > 65535 ||
			(pm.Protocol != "tcp" && pm.Protocol != "udp") {
			t.Fatalf("--port %q accepted as %+v", s, pm)
		}
	})
}
