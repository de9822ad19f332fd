// Package localetcd starts a single-node etcd inside the current process.
//
// It exists so that the examples and the daemon's demo mode run on a machine with
// nothing installed: the node listens on loopback on ports chosen by the kernel, keeps
// its data in a temporary directory and logs nothing unless asked to.
package localetcd

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Node is a running single-node etcd. Close stops it and removes its data.
type Node struct {
	etcd *embed.Etcd
	dir  string
}

type options struct {
	logger     *zap.Logger
	startup    time.Duration
	quotaBytes int64
}

// Option configures Start.
type Option interface{ apply(*options) }

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

// WithLogger sends etcd's own logs to l. The default discards them.
func WithLogger(l *zap.Logger) Option {
	return optionFunc(func(o *options) { o.logger = l })
}

// WithStartTimeout bounds how long Start waits for the node to serve. Default 30s.
func WithStartTimeout(d time.Duration) Option {
	return optionFunc(func(o *options) { o.startup = d })
}

// WithQuotaBackendBytes sets the backend quota, so that tests can fill it and raise
// the NOSPACE alarm. Default: etcd's own (2 GiB).
func WithQuotaBackendBytes(n int64) Option {
	return optionFunc(func(o *options) { o.quotaBytes = n })
}

// Start launches a node and waits until it serves client requests.
func Start(opts ...Option) (*Node, error) {
	o := options{logger: zap.NewNop(), startup: 30 * time.Second}
	for _, opt := range opts {
		opt.apply(&o)
	}
	if o.logger == nil {
		return nil, errors.New("localetcd: nil logger")
	}
	if o.startup <= 0 {
		return nil, fmt.Errorf("localetcd: start timeout must be positive, got %v", o.startup)
	}
	if o.quotaBytes < 0 {
		return nil, fmt.Errorf("localetcd: backend quota must not be negative, got %d", o.quotaBytes)
	}

	// Free ports are found by binding port 0 and releasing it; another process may take
	// one in between, so a failed start is retried on fresh ports.
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		n, err := start(o)
		if err == nil {
			return n, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func start(o options) (*Node, error) {
	dir, err := os.MkdirTemp("", "localetcd-")
	if err != nil {
		return nil, fmt.Errorf("localetcd: %w", err)
	}
	ports, err := freePorts(2)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	clientURL := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports[0])}
	peerURL := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports[1])}

	cfg := embed.NewConfig()
	cfg.Name = "localetcd"
	cfg.Dir = dir
	cfg.ListenClientUrls = []url.URL{clientURL}
	cfg.AdvertiseClientUrls = []url.URL{clientURL}
	cfg.ListenPeerUrls = []url.URL{peerURL}
	cfg.AdvertisePeerUrls = []url.URL{peerURL}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(o.logger)
	cfg.UnsafeNoFsync = true // throwaway data: durability buys nothing here
	if o.quotaBytes > 0 {
		cfg.QuotaBackendBytes = o.quotaBytes
	}

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("localetcd: start: %w", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("localetcd: start: %w", err)
	case <-time.After(o.startup):
		e.Server.Stop()
		e.Close()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("localetcd: not ready after %v", o.startup)
	}
	return &Node{etcd: e, dir: dir}, nil
}

// Endpoints returns the client URLs of the node.
func (n *Node) Endpoints() []string {
	urls := make([]string, 0, len(n.etcd.Config().AdvertiseClientUrls))
	for _, u := range n.etcd.Config().AdvertiseClientUrls {
		urls = append(urls, u.String())
	}
	return urls
}

// Server returns the embedded server, for tests that need to reach inside it.
func (n *Node) Server() *embed.Etcd { return n.etcd }

// closeTimeout bounds Close. etcd's own shutdown gives in-flight requests up to its
// request timeout (7s for a single node) and then stops them; twice that plus the
// peer handler's second leaves room for a slow machine.
const closeTimeout = 20 * time.Second

// Close stops the node and removes its data directory. It waits at most 20s for etcd
// to stop; past that it returns an error and leaves the data directory, so that a
// process shutting down is never held by its embedded node. It is safe to call more
// than once.
func (n *Node) Close() error {
	if n.etcd == nil {
		return nil
	}
	e := n.etcd
	n.etcd = nil
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		e.Close()
		<-e.Server.StopNotify()
	}()
	t := time.NewTimer(closeTimeout)
	defer t.Stop()
	select {
	case <-stopped:
	case <-t.C:
		return fmt.Errorf("localetcd: etcd did not stop within %v; its data stays in %s", closeTimeout, n.dir)
	}
	return os.RemoveAll(n.dir)
}

func freePorts(count int) ([]int, error) {
	ports := make([]int, 0, count)
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	for len(ports) < count {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("localetcd: find a free port: %w", err)
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
