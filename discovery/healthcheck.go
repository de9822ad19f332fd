package discovery

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
)

// HealthChecker actively checks an instance; a non-nil error marks it failed. A Balancer
// calls Check from its own goroutine with a context bounded by the check interval; Check
// must return when that context ends and must not call the Balancer's Close (which waits
// for the checks).
type HealthChecker interface {
	Check(ctx context.Context, inst Instance) error
}

// CheckFunc adapts a function to HealthChecker.
type CheckFunc func(ctx context.Context, inst Instance) error

// Check calls f.
func (f CheckFunc) Check(ctx context.Context, inst Instance) error { return f(ctx, inst) }

// TCPCheck passes when a TCP connection to the instance's address can be opened.
func TCPCheck() HealthChecker {
	return CheckFunc(func(ctx context.Context, inst Instance) error {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", inst.Addr())
		if err != nil {
			return err
		}
		return conn.Close()
	})
}

// HTTPCheck passes when GET http://<address:port><path> answers 2xx. A nil client means
// http.DefaultClient; the request is bounded by the context the Balancer passes.
func HTTPCheck(path string, client *http.Client) HealthChecker {
	if client == nil {
		client = http.DefaultClient
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	return CheckFunc(func(ctx context.Context, inst Instance) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+inst.Addr()+path, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			return fmt.Errorf("discovery: health check %s: status %d", req.URL, resp.StatusCode)
		}
		return nil
	})
}
