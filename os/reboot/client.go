package reboot

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// TLSFiles are the PEM files of a TLS connection to etcd: the CA that
// signed etcd's certificate, and this machine's client certificate and key
// when etcd asks for one (locksmith's LOCKSMITHD_ETCD_CAFILE, _CERTFILE,
// _KEYFILE).
type TLSFiles struct {
	CAFile, CertFile, KeyFile string
}

// Empty says whether no file is set: the connection is plain unless the
// endpoints are https, which then trust the system's CAs.
func (t TLSFiles) Empty() bool { return t == TLSFiles{} }

// DialEtcd connects to etcd's client URLs, with TLS when files are given
// or an endpoint is https. The connection is made lazily; calls fail over
// between the endpoints by themselves.
func DialEtcd(endpoints []string, files TLSFiles) (*clientv3.Client, error) {
	cfg := clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		// etcd's client logs every retry; the callers report what matters.
		Logger: zap.NewNop(),
	}
	https := false
	for _, e := range endpoints {
		https = https || strings.HasPrefix(e, "https://")
	}
	if !files.Empty() || https {
		if (files.CertFile == "") != (files.KeyFile == "") {
			return nil, errors.New("etcd TLS: a client certificate and its key go together (LOCKSMITHD_ETCD_CERTFILE, LOCKSMITHD_ETCD_KEYFILE)")
		}
		for _, e := range endpoints {
			if !strings.HasPrefix(e, "https://") {
				return nil, fmt.Errorf("etcd TLS: endpoint %s is not https", e)
			}
		}
		info := transport.TLSInfo{CertFile: files.CertFile, KeyFile: files.KeyFile, TrustedCAFile: files.CAFile}
		tc, err := info.ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("etcd TLS: %w", err)
		}
		cfg.TLS = tc
		// etcd's client reports a refused certificate as a deadline
		// exceeded, later: try one handshake now to say what is wrong.
		if err := checkTLS(endpoints, tc); err != nil {
			return nil, err
		}
	}
	c, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to etcd %v: %w", endpoints, err)
	}
	return c, nil
}

// checkTLS makes a TLS connection to each endpoint until one is accepted,
// and returns the TLS error when every endpoint that answered refused it
// (or its certificate). Endpoints that cannot be reached are not errors:
// etcd may come up later.
func checkTLS(endpoints []string, tc *tls.Config) error {
	var tlsErr error
	for _, e := range endpoints {
		u, err := url.Parse(e)
		if err != nil {
			return fmt.Errorf("etcd endpoint %q: %w", e, err)
		}
		d := &net.Dialer{Timeout: 3 * time.Second}
		raw, err := d.Dial("tcp", u.Host)
		if err != nil {
			continue
		}
		cc := tc.Clone()
		if cc.ServerName == "" {
			cc.ServerName = u.Hostname()
		}
		c := tls.Client(raw, cc)
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		err = c.Handshake()
		if err == nil {
			// TLS 1.3 servers refuse a client certificate after the
			// handshake: a read brings the alert (or times out: fine).
			_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			_, err = c.Read(make([]byte, 1))
			var ne net.Error
			if err == io.EOF || errors.As(err, &ne) && ne.Timeout() {
				err = nil
			}
		}
		c.Close()
		if err == nil {
			return nil
		}
		if tlsErr == nil {
			tlsErr = fmt.Errorf("etcd TLS with %s: %w", e, err)
		}
	}
	return tlsErr
}

// MachineID reads the machine's ID from /etc/machine-id.
func MachineID() (string, error) {
	b, err := os.ReadFile("/etc/machine-id")
	if err != nil {
		return "", fmt.Errorf("read machine ID: %w", err)
	}
	id := string(bytes.TrimSpace(b))
	if id == "" {
		return "", fmt.Errorf("read machine ID: /etc/machine-id is empty")
	}
	return id, nil
}

// callTimeout bounds one etcd call, so a partitioned member does not hang
// the caller (the agent retries; the CLI reports).
func callTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, 10*time.Second)
}
