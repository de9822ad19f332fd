package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/etcd-monitor/etcd-monitor/config"
)

func init() {
	register("config", "hot reload of a worker pool's size from etcd; bad values rejected; snapshot and roll back", runConfig)
}

// pool is a stand-in for a connection or worker pool that can be resized live.
type pool struct {
	mu   sync.Mutex
	size int
}

func (p *pool) resize(n int) (old int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	old, p.size = p.size, n
	return old
}

func runConfig(ctx context.Context, e *env) error {
	prefix := "/examples/config/" + e.nodeID
	cfg, err := config.New(e.cli, prefix)
	if err != nil {
		return err
	}
	defer cfg.Close()
	if err := cfg.WaitReady(ctx); err != nil {
		return err
	}
	// An operator's tool: another client, as another process would have.
	opCli, err := e.newClient()
	if err != nil {
		return err
	}
	defer opCli.Close()
	operator, err := config.New(opCli, prefix)
	if err != nil {
		return err
	}
	defer operator.Close()

	p := &pool{}
	reloads := make(chan string, 8)
	stop, err := cfg.Watch("pool", func(c config.Change) {
		if c.Key != "pool/size" || c.New == nil {
			return
		}
		n, err := cfg.Int("pool/size")
		if err != nil {
			reloads <- fmt.Sprintf("rejected pool/size %s: %v (keeping %d)", c.New, err, p.size)
			return
		}
		old := p.resize(n)
		reloads <- fmt.Sprintf("pool resized %d -> %d", old, n)
	})
	if err != nil {
		return err
	}
	defer stop()
	wait := func() error {
		select {
		case msg := <-reloads:
			e.printf("%s", msg)
			return nil
		case <-time.After(3 * time.Second):
			return fmt.Errorf("no reload within 3s")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := operator.Set(ctx, "pool/size", 4); err != nil {
		return err
	}
	if err := wait(); err != nil {
		return err
	}

	snap, err := operator.Snapshot(ctx)
	if err != nil {
		return err
	}
	e.printf("snapshot version %d taken (%d keys)", snap.Version, snap.Keys)

	start := time.Now()
	if err := operator.Set(ctx, "pool/size", 16); err != nil {
		return err
	}
	if err := wait(); err != nil {
		return err
	}
	e.printf("  (change reached the service %v after the write)", time.Since(start).Round(time.Microsecond))

	// Another tool writes something that is not a number: only that key is affected.
	if _, err := opCli.Put(ctx, prefix+"/pool/size", "sixteen"); err != nil {
		return err
	}
	if err := wait(); err != nil {
		return err
	}

	if err := operator.Restore(ctx, snap.Version); err != nil {
		return err
	}
	if err := wait(); err != nil {
		return err
	}
	raw, _ := cfg.Raw("pool/size")
	e.printf("rolled back to snapshot %d in one transaction: pool/size = %s", snap.Version, json.RawMessage(raw))
	return nil
}
