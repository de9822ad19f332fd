package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/etcd-monitor/etcd-monitor/election"
)

func init() {
	register("leader-task", "a periodic job that runs only on the leader and moves when the leader steps down", runLeaderTask)
}

const leaderTaskPrefix = "/examples/leader-task"

func runLeaderTask(ctx context.Context, e *env) error {
	if !e.embedded {
		cand, err := election.New(e.cli, leaderTaskPrefix, e.nodeID, election.WithTTL(5*time.Second))
		if err != nil {
			return err
		}
		defer cand.Close()
		task, err := election.NewLeaderTask(cand, time.Second, func(ctx context.Context) error {
			e.printf("%s: tick (token %d)", e.nodeID, cand.Token())
			return nil
		})
		if err != nil {
			return err
		}
		e.printf("%s: running the task while leader; stop it with Ctrl-C", e.nodeID)
		return task.Run(ctx)
	}

	type tick struct{ id string }
	ticks := make(chan tick, 100)
	stops := map[string]context.CancelFunc{}
	var wg sync.WaitGroup
	defer wg.Wait()
	for i := 1; i <= 2; i++ {
		cli, err := e.newClient()
		if err != nil {
			return err
		}
		defer cli.Close()
		id := fmt.Sprintf("worker-%d", i)
		cand, err := election.New(cli, leaderTaskPrefix, id)
		if err != nil {
			return err
		}
		defer cand.Close()
		task, err := election.NewLeaderTask(cand, 200*time.Millisecond, func(ctx context.Context) error {
			select {
			case ticks <- tick{id}:
			default:
			}
			return nil
		})
		if err != nil {
			return err
		}
		runCtx, stop := context.WithCancel(ctx)
		defer stop()
		stops[id] = stop
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = task.Run(runCtx)
		}()
	}
	next := func() (string, error) {
		select {
		case t := <-ticks:
			return t.id, nil
		case <-time.After(10 * time.Second):
			return "", fmt.Errorf("no tick")
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	var first string
	for i := 0; i < 3; i++ {
		id, err := next()
		if err != nil {
			return err
		}
		e.printf("tick on %s", id)
		first = id
	}
	e.printf("stopping %s (it resigns on the way out)", first)
	stops[first]()
	for n := 0; n < 3; {
		id, err := next()
		if err != nil {
			return err
		}
		if id == first {
			continue // a tick sent before it stopped
		}
		e.printf("tick on %s", id)
		n++
	}
	for _, stop := range stops {
		stop()
	}
	return nil
}
