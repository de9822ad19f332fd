// Package etcdtest runs the project's tests against real etcd: one in-process node shared
// by a package's tests and examples, and 3-node clusters for fault injection.
//
// A package's TestMain calls Main; tests then take clients from Client and a key prefix of
// their own from Prefix, so that they never see each other's keys.
package etcdtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/etcd-monitor/etcd-monitor/internal/localetcd"
)

var (
	inMain     bool
	sharedOnce sync.Once
	shared     *localetcd.Node
	sharedErr  error
	counter    atomic.Int64
)

// LeakOptions are the goroutines that outlive a test through no fault of the code under
// test: etcd's server and the gRPC machinery it keeps after a member is closed.
func LeakOptions() []goleak.Option {
	return []goleak.Option{
		goleak.IgnoreTopFunction("go.opencensus.io/stats/view.(*worker).start"),
		goleak.IgnoreTopFunction("github.com/golang/glog.(*fileSink).flushDaemon"),
		goleak.IgnoreAnyFunction("go.etcd.io/etcd/pkg/v3/schedule.(*fifo).run"),
		goleak.IgnoreAnyFunction("go.etcd.io/etcd/server/v3/etcdserver/api/v3rpc.monitorLeader.func1"),
		goleak.IgnoreAnyFunction("google.golang.org/grpc/internal/grpcsync.(*CallbackSerializer).run"),
	}
}

// Main runs the package's tests and examples, stops the shared node (started by the first
// test that needs it, so that it starts after the testing package has set up its output)
// and fails the run if any goroutine leaked. Call it from TestMain.
func Main(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ignore := append(LeakOptions(), goleak.IgnoreCurrent())
	inMain = true
	code := m.Run()
	sharedOnce.Do(func() { sharedErr = errNotStarted }) // none starts from here on
	if shared != nil {
		if err := shared.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "etcdtest: close: %v\n", err)
		}
	}
	if code != 0 {
		return code
	}
	if err := goleak.Find(ignore...); err != nil {
		fmt.Fprintf(os.Stderr, "etcdtest: goroutines leaked: %v\n", err)
		return 1
	}
	return 0
}

var errNotStarted = errors.New("etcdtest: the shared node is used outside etcdtest.Main's tests")

// node returns the shared node, starting it on first use. It panics outside Main, or
// when etcd does not start.
func node() *localetcd.Node {
	if !inMain {
		panic("etcdtest: the shared node is used outside etcdtest.Main")
	}
	sharedOnce.Do(func() { shared, sharedErr = localetcd.Start() })
	if sharedErr != nil {
		panic(fmt.Sprintf("etcdtest: %v", sharedErr))
	}
	return shared
}

// Endpoints returns the shared node's client URLs. It panics outside Main.
func Endpoints() []string { return node().Endpoints() }

// Node returns the shared node, for tests that need to reach inside the server.
func Node() *localetcd.Node { return node() }

// NewClient returns a client of the shared node; the caller closes it.
func NewClient() (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{
		Endpoints:   Endpoints(),
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
}

// Client returns a client of the shared node that is closed when the test ends.
func Client(tb testing.TB) *clientv3.Client {
	tb.Helper()
	cli, err := NewClient()
	if err != nil {
		tb.Fatalf("etcdtest: client: %v", err)
	}
	tb.Cleanup(func() { cli.Close() })
	return cli
}

// Prefix returns a key prefix no other test uses, ending in "/".
func Prefix(tb testing.TB) string {
	name := strings.NewReplacer("/", "_", " ", "_").Replace(tb.Name())
	return fmt.Sprintf("/etcdtest/%s/%d/", name, counter.Add(1))
}

// Context returns a context that ends when the test does or after d, whichever is first.
func Context(tb testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	tb.Cleanup(cancel)
	return ctx
}

// ExpiringContext is a context that ends with context.DeadlineExceeded when Expire is
// called: a deadline that falls where a test needs it (once a waiting key is in etcd,
// say), not wherever a short timeout happens to land on a loaded machine.
type ExpiringContext struct {
	context.Context
	done chan struct{}
	once sync.Once
}

// NewExpiringContext returns an ExpiringContext that has not expired yet.
func NewExpiringContext() *ExpiringContext {
	return &ExpiringContext{Context: context.Background(), done: make(chan struct{})}
}

// Done is closed by Expire.
func (c *ExpiringContext) Done() <-chan struct{} { return c.done }

// Err is context.DeadlineExceeded once Expire has been called, nil before.
func (c *ExpiringContext) Err() error {
	select {
	case <-c.done:
		return context.DeadlineExceeded
	default:
		return nil
	}
}

// Expire ends the context; later calls do nothing.
func (c *ExpiringContext) Expire() { c.once.Do(func() { close(c.done) }) }
