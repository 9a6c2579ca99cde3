package metadata

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
)

// ErrNotRunning says no metadata service answers on the socket.
var ErrNotRunning = errors.New("no metadata service is running")

// Client talks to the registration API over its unix socket.
type Client struct {
	Socket string
	http   *http.Client
}

// NewClient is a client of the service at socket.
func NewClient(socket string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}
	return &Client{Socket: socket, http: &http.Client{Transport: tr}}
}

func (c *Client) do(ctx context.Context, method, path string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://metadata"+path, rd)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var ne *net.OpError
		if errors.As(err, &ne) && ne.Op == "dial" {
			return fmt.Errorf("%w at %s (start `orbit metadata-service`): %v", ErrNotRunning, c.Socket, ne.Err)
		}
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("metadata service: %s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	if out != nil {
		return json.NewDecoder(resp.Body).Decode(out)
	}
	return nil
}

// Ping checks that the service runs.
func (c *Client) Ping(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, "/v1/ping", nil, nil)
}

// Register registers a pod.
func (c *Client) Register(ctx context.Context, reg *Registration) (*Registered, error) {
	var out Registered
	if err := c.do(ctx, http.MethodPut, "/v1/pods/"+reg.UUID, reg, &out); err != nil {
		return nil, fmt.Errorf("register pod %s with the metadata service: %w", reg.UUID, err)
	}
	return &out, nil
}

// Unregister forgets a pod.
func (c *Client) Unregister(ctx context.Context, uuid string) error {
	if err := c.do(ctx, http.MethodDelete, "/v1/pods/"+uuid, nil, nil); err != nil {
		return fmt.Errorf("unregister pod %s from the metadata service: %w", uuid, err)
	}
	return nil
}
