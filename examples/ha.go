package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-monitor/etcd-monitor/election"
)

func init() {
	register("ha", "a primary/standby pair whose writes are fenced: a paused primary's stale writes are refused", runHA)
}

const haPrefix = "/examples/ha/leader"

// fencedStore stands for an external resource (a database, a file store) that remembers
// the highest fencing token it has seen and refuses writes carrying a lower one.
type fencedStore struct {
	mu    sync.Mutex
	token int64
	data  string
}

func (s *fencedStore) write(token int64, data string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if token < s.token {
		return fmt.Errorf("stale token %d < %d: write %q refused", token, s.token, data)
	}
	s.token, s.data = token, data
	return nil
}

func runHA(ctx context.Context, e *env) error {
	if !e.embedded {
		return runHANode(ctx, e)
	}
	store := &fencedStore{}
	newCand := func(id string) (*election.Candidate, error) {
		cli, err := e.newClient()
		if err != nil {
			return nil, err
		}
		context.AfterFunc(ctx, func() { cli.Close() })
		return election.New(cli, haPrefix, id, election.WithTTL(2*time.Second))
	}
	primary, err := newCand("primary")
	if err != nil {
		return err
	}
	defer primary.Close()
	standby, err := newCand("standby")
	if err != nil {
		return err
	}
	defer standby.Close()

	if err := primary.Campaign(ctx); err != nil {
		return err
	}
	pToken := primary.Token()
	if err := store.write(pToken, "v1 from primary"); err != nil {
		return err
	}
	if _, err := primary.Do(ctx, clientv3.OpPut("/examples/ha/state", "v1")); err != nil {
		return err
	}
	e.printf("primary leads (token %d) and wrote v1", pToken)
	standbyUp := make(chan error, 1)
	go func() { standbyUp <- standby.Campaign(ctx) }()

	// The primary stalls (a long GC pause, a frozen VM) and its lease runs out meanwhile;
	// here the lease is revoked to make that instant.
	r, err := e.cli.Get(ctx, primary.Key())
	if err != nil {
		return err
	}
	if len(r.Kvs) == 0 {
		return errors.New("primary's key missing")
	}
	start := time.Now()
	if _, err := e.cli.Revoke(ctx, clientv3.LeaseID(r.Kvs[0].Lease)); err != nil {
		return err
	}
	select {
	case err := <-standbyUp:
		if err != nil {
			return err
		}
	case <-ctx.Done():
		return ctx.Err()
	}
	sToken := standby.Token()
	e.printf("primary's lease gone; standby took over in %v (token %d)", time.Since(start).Round(time.Millisecond), sToken)
	if err := store.write(sToken, "v2 from standby"); err != nil {
		return err
	}
	if _, err := standby.Do(ctx, clientv3.OpPut("/examples/ha/state", "v2")); err != nil {
		return err
	}
	e.printf("standby wrote v2")

	// The primary wakes up and, before noticing anything, writes with its old token.
	if err := store.write(pToken, "v3 from primary"); err != nil {
		e.printf("store: %v", err)
	} else {
		return errors.New("a stale write was accepted")
	}
	if _, err := primary.Do(ctx, clientv3.OpPut("/examples/ha/state", "v3")); err != nil {
		e.printf("etcd: primary's guarded write refused: %v", err)
	} else {
		return errors.New("a stale guarded write was accepted")
	}
	select {
	case <-primary.Done():
		e.printf("primary knows it lost leadership: %v", primary.Err())
	case <-time.After(5 * time.Second):
		return errors.New("primary never noticed")
	}
	e.printf("store holds %q (token %d)", store.data, store.token)
	return nil
}

// runHANode is one node of a pair, for one process per --node-id: the leader writes a
// heartbeat fenced by leadership every second; kill it and the other takes over.
func runHANode(ctx context.Context, e *env) error {
	cand, err := election.New(e.cli, haPrefix, e.nodeID, election.WithTTL(5*time.Second))
	if err != nil {
		return err
	}
	defer cand.Close()
	e.printf("%s standing by; stop it with Ctrl-C", e.nodeID)
	return cand.Run(ctx, func(leaderCtx context.Context) error {
		e.printf("%s is primary (token %d)", e.nodeID, cand.Token())
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			if _, err := cand.Do(leaderCtx, clientv3.OpPut("/examples/ha/state", fmt.Sprintf("%s@%d", e.nodeID, cand.Token()))); err != nil {
				e.printf("%s: write refused: %v", e.nodeID, err)
			}
			select {
			case <-leaderCtx.Done():
				e.printf("%s is no longer primary", e.nodeID)
				return leaderCtx.Err()
			case <-tick.C:
			}
		}
	})
}
