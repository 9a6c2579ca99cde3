package metadata

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
)

// Listeners are the two sockets the service answers on.
type Listeners struct {
	// Registration is the unix socket of the registration API.
	Registration net.Listener
	// Metadata is the TCP socket of the metadata API.
	Metadata net.Listener
}

// Activated takes the sockets systemd passed (socket activation: a unix
// stream socket and a TCP one, in either order); ok is false when none
// were passed.
func Activated() (l Listeners, ok bool, err error) {
	ls, err := activation.Listeners()
	if err != nil {
		return l, false, fmt.Errorf("socket activation: %w", err)
	}
	if len(ls) == 0 {
		return l, false, nil
	}
	for _, x := range ls {
		if x == nil {
			return l, false, errors.New("socket activation: a passed socket is not a stream listener")
		}
		switch x.Addr().Network() {
		case "unix":
			l.Registration = x
		case "tcp", "tcp4", "tcp6":
			l.Metadata = x
		}
	}
	if l.Registration == nil || l.Metadata == nil {
		return l, false, fmt.Errorf("socket activation: want a unix socket and a TCP socket, got %d sockets", len(ls))
	}
	return l, true, nil
}

// Listen makes the service's sockets: the registration socket at path,
// readable by root only, and the metadata API on addr (host:port).
func Listen(path, addr string) (Listeners, error) {
	var l Listeners
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return l, fmt.Errorf("registration socket: %w", err)
	}
	// A socket left by a service that died is in the way; a live one
	// answers, and is not taken over.
	if c, err := net.Dial("unix", path); err == nil {
		c.Close()
		return l, fmt.Errorf("a metadata service already listens at %s", path)
	}
	_ = os.Remove(path)
	u, err := net.Listen("unix", path)
	if err != nil {
		return l, fmt.Errorf("registration socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		u.Close()
		return l, fmt.Errorf("registration socket: %w", err)
	}
	t, err := net.Listen("tcp", addr)
	if err != nil {
		u.Close()
		return l, fmt.Errorf("metadata API on %s: %w", addr, err)
	}
	return Listeners{Registration: u, Metadata: t}, nil
}

// Serve answers on l until ctx is done.
func (s *Server) Serve(ctx context.Context, l Listeners) error {
	if ta, ok := l.Metadata.Addr().(*net.TCPAddr); ok && s.Port == 0 {
		s.Port = ta.Port
	}
	reg := &http.Server{Handler: s.RegistrationHandler(), ReadHeaderTimeout: 10 * time.Second}
	api := &http.Server{Handler: s.MetadataHandler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 2)
	go func() { errc <- reg.Serve(l.Registration) }()
	go func() { errc <- api.Serve(l.Metadata) }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = reg.Shutdown(sctx)
	_ = api.Shutdown(sctx)
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}
