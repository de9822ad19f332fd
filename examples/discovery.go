package main

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-monitor/etcd-monitor/discovery"
)

func init() {
	register("discovery", "self-healing registration: drained, key deleted, registrant dies; a resolver follows", runDiscovery)
}

func runDiscovery(ctx context.Context, e *env) error {
	prefix := "/examples/discovery/" + e.nodeID
	const ttl = 2 * time.Second

	res, err := discovery.NewResolver(e.cli, prefix)
	if err != nil {
		return err
	}
	defer res.Close()
	if err := res.WaitReady(ctx); err != nil {
		return err
	}
	events, err := res.Watch(ctx, "payment")
	if err != nil {
		return err
	}

	// Three instances, each registered by a "process" of its own (its own client).
	var regs []*discovery.Registrar
	var clients []*clientv3.Client
	defer func() {
		for _, r := range regs {
			r.Close()
		}
		for _, c := range clients {
			c.Close()
		}
	}()
	for i := range 3 {
		cli, err := e.newClient()
		if err != nil {
			return err
		}
		clients = append(clients, cli)
		reg, err := discovery.NewRegistrar(cli, prefix, discovery.WithTTL(ttl))
		if err != nil {
			return err
		}
		regs = append(regs, reg)
		inst := discovery.Instance{Service: "payment", ID: fmt.Sprint("p", i), Address: "10.0.0.1", Port: 8080 + i}
		if err := reg.Register(ctx, inst); err != nil {
			return err
		}
	}
	next := func() (discovery.Event, error) {
		select {
		case ev := <-events:
			return ev, nil
		case <-time.After(3 * ttl):
			return discovery.Event{}, fmt.Errorf("no resolver event within %v", 3*ttl)
		case <-ctx.Done():
			return discovery.Event{}, ctx.Err()
		}
	}
	for range 3 {
		ev, err := next()
		if err != nil {
			return err
		}
		e.printf("resolver: %s %s at %s", ev.Type, ev.Instance.ID, ev.Instance.Addr())
	}
	insts, err := res.Discover("payment")
	if err != nil {
		return err
	}
	e.printf("Discover(payment) from memory: %d instances", len(insts))

	// p1 is drained for maintenance: it stays registered, balancers stop picking it;
	// then it is back in service.
	p1 := discovery.Instance{Service: "payment", ID: "p1"}
	for _, step := range []func(context.Context, discovery.Instance) error{regs[1].Drain, regs[1].Undrain} {
		if err := step(ctx, p1); err != nil {
			return err
		}
		ev, err := next()
		if err != nil {
			return err
		}
		e.printf("resolver: %s %s, drained=%v", ev.Type, ev.Instance.ID, ev.Instance.Drained)
	}

	// Someone deletes p0's key: its Registrar writes it back. A reader that is behind
	// gets the removal and the return merged into one update.
	key := regs[0].Key(discovery.Instance{Service: "payment", ID: "p0"})
	start := time.Now()
	if _, err := e.cli.Delete(ctx, key); err != nil {
		return err
	}
	for {
		ev, err := next()
		if err != nil {
			return err
		}
		e.printf("resolver: %s %s (%v after the delete)", ev.Type, ev.Instance.ID, time.Since(start).Round(time.Millisecond))
		if ev.Type != discovery.Removed {
			break
		}
	}

	// p2's process dies without deregistering: it leaves when its lease expires.
	start = time.Now()
	clients[2].Close()
	ev, err := next()
	if err != nil {
		return err
	}
	e.printf("resolver: %s %s (%v after its process died, TTL %v)", ev.Type, ev.Instance.ID, time.Since(start).Round(100*time.Millisecond), ttl)

	// p1 deregisters cleanly.
	if err := regs[1].Deregister(ctx, discovery.Instance{Service: "payment", ID: "p1"}); err != nil {
		return err
	}
	if ev, err = next(); err != nil {
		return err
	}
	e.printf("resolver: %s %s (deregistered)", ev.Type, ev.Instance.ID)
	return nil
}
