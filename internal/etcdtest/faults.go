package etcdtest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// ErrInjected is the error of a request failed by Faults.
var ErrInjected = errors.New("etcdtest: injected fault")

// Faults fails chosen unary requests of a client made by FaultClient: a request either
// never reaches etcd (Fail) or is applied and its reply lost (LoseReply). It is safe for
// concurrent use.
type Faults struct {
	mu      sync.Mutex
	match   func(method string, req any) bool
	mode    faultMode
	delay   time.Duration
	hits    int
	streams func(method string) bool

	streamHits int
}

type faultMode int

const (
	failMode faultMode = iota
	loseReplyMode
	stallMode
	delayMode
)

// Fail makes every request that match accepts fail with ErrInjected without reaching
// etcd; nil clears the fault.
func (f *Faults) Fail(match func(method string, req any) bool) { f.set(match, failMode) }

// LoseReply makes every request that match accepts reach etcd, then fail with
// ErrInjected as if the reply had been lost; nil clears the fault.
func (f *Faults) LoseReply(match func(method string, req any) bool) { f.set(match, loseReplyMode) }

// Stall makes every request that match accepts hang, unsent, until its context ends
// (forever without a deadline), as on a connection that swallows everything; nil clears
// the fault (requests already stalled stay so).
func (f *Faults) Stall(match func(method string, req any) bool) { f.set(match, stallMode) }

// Delay makes every request that match accepts reach etcd and be applied, then holds
// its reply for d, as a slow server or network would; nil clears the fault.
func (f *Faults) Delay(match func(method string, req any) bool, d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.match, f.mode, f.delay = match, delayMode, d
}

// IsGrant matches lease grants.
func IsGrant(_ string, req any) bool {
	_, ok := req.(*pb.LeaseGrantRequest)
	return ok
}

// FailStreams makes every stream whose method match accepts fail with ErrInjected
// ("/etcdserverpb.Lease/LeaseKeepAlive": keep-alives): a new one fails to open, and a
// request sent on one opened before fails (the stream stays open at etcd's end, and a
// request sent before the fault is answered); nil clears the fault. These failures are
// counted by StreamHits, not Hits.
func (f *Faults) FailStreams(match func(method string) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.streams = match
}

// StreamHits returns how many stream opens and stream requests FailStreams failed.
func (f *Faults) StreamHits() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.streamHits
}

// streamFailing reports whether method's streams fail now, counting the failure.
func (f *Faults) streamFailing(method string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	hit := f.streams != nil && f.streams(method)
	if hit {
		f.streamHits++
	}
	return hit
}

func (f *Faults) interceptStream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string,
	streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	if f.streamFailing(method) {
		return nil, ErrInjected
	}
	cs, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		return nil, err
	}
	return faultyStream{ClientStream: cs, f: f, method: method}, nil
}

// faultyStream fails its requests while FailStreams matches its method.
type faultyStream struct {
	grpc.ClientStream
	f      *Faults
	method string
}

func (s faultyStream) SendMsg(m any) error {
	if s.f.streamFailing(s.method) {
		return ErrInjected
	}
	return s.ClientStream.SendMsg(m)
}

// Hits returns how many requests were failed so far.
func (f *Faults) Hits() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits
}

func (f *Faults) set(match func(string, any) bool, mode faultMode) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.match, f.mode = match, mode
}

func (f *Faults) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn,
	invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	f.mu.Lock()
	hit := f.match != nil && f.match(method, req)
	mode, delay := f.mode, f.delay
	if hit {
		f.hits++
	}
	f.mu.Unlock()
	if !hit {
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	switch mode {
	case loseReplyMode:
		_ = invoker(ctx, method, req, reply, cc, opts...)
	case stallMode:
		<-ctx.Done()
		return ctx.Err()
	case delayMode:
		err := invoker(ctx, method, req, reply, cc, opts...)
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return ErrInjected
}

// FaultClient returns a client of endpoints (the shared node's when none are given)
// whose unary requests can be failed through the returned Faults. It is closed when the
// test ends.
func FaultClient(tb testing.TB, endpoints ...string) (*clientv3.Client, *Faults) {
	tb.Helper()
	if len(endpoints) == 0 {
		endpoints = Endpoints()
	}
	f := &Faults{}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
		DialOptions: []grpc.DialOption{
			grpc.WithChainUnaryInterceptor(f.intercept),
			grpc.WithChainStreamInterceptor(f.interceptStream),
		},
	})
	if err != nil {
		tb.Fatalf("etcdtest: fault client: %v", err)
	}
	tb.Cleanup(func() { cli.Close() })
	return cli, f
}

// IsDelete matches requests that delete keys: a DeleteRange, or a Txn with a delete in
// either branch.
func IsDelete(_ string, req any) bool {
	switch r := req.(type) {
	case *pb.DeleteRangeRequest:
		return true
	case *pb.TxnRequest:
		for _, ops := range [][]*pb.RequestOp{r.Success, r.Failure} {
			for _, op := range ops {
				if op.GetRequestDeleteRange() != nil {
					return true
				}
			}
		}
	}
	return false
}

// IsPut matches requests that put keys: a Put, or a Txn with a put in either branch.
func IsPut(_ string, req any) bool {
	switch r := req.(type) {
	case *pb.PutRequest:
		return true
	case *pb.TxnRequest:
		for _, ops := range [][]*pb.RequestOp{r.Success, r.Failure} {
			for _, op := range ops {
				if op.GetRequestPut() != nil {
					return true
				}
			}
		}
	}
	return false
}

// Count returns how many keys exist under prefix (or at key), read through cli, or -1
// if the read failed; it is safe to call inside an Eventually condition.
func Count(cli *clientv3.Client, prefix string) int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return -1
	}
	return r.Count
}

// StopLeaderWhileHeld is the shared check that a holding (a lock, a leadership) survives
// an etcd leader change: it stops the etcd leader and waits until write — a write
// guarded by the holding — succeeds again, failing the test if write ever returns an
// error that lost says means the holding ended, or if done (the holding's end) closes.
// The member is restarted before it returns.
func (c *Cluster) StopLeaderWhileHeld(t *testing.T, write func(context.Context) error, lost func(error) bool, done <-chan struct{}) {
	t.Helper()
	stopped := c.StopLeader()
	defer c.RestartMember(stopped)
	var (
		mu       sync.Mutex
		lostWith error
	)
	ok := assert.EventuallyWithT(t, func(ct *assert.CollectT) {
		wctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		err := write(wctx)
		if err != nil && lost(err) {
			mu.Lock()
			lostWith = err
			mu.Unlock()
		}
		assert.NoError(ct, err)
	}, 10*time.Second, 50*time.Millisecond, "guarded writes succeed once etcd has a new leader")
	mu.Lock()
	if lostWith != nil {
		t.Errorf("holding lost over an etcd leader change: %v", lostWith)
	}
	mu.Unlock()
	if !ok {
		return
	}
	select {
	case <-done:
		t.Error("holding ended over an etcd leader change")
	default:
	}
}
