package reboot

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// DialEtcd connects to etcd's client URLs. The connection is made lazily;
// calls fail over between the endpoints by themselves.
func DialEtcd(endpoints []string) (*clientv3.Client, error) {
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		// etcd's client logs every retry; the callers report what matters.
		Logger: zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("connect to etcd %v: %w", endpoints, err)
	}
	return c, nil
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
