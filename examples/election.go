package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-monitor/etcd-monitor/election"
)

func init() {
	register("election", "leader election with failover: resign, then a crashed leader replaced once its lease runs out", runElection)
}

const electionPrefix = "/examples/election"

func runElection(ctx context.Context, e *env) error {
	if !e.embedded {
		return runElectionNode(ctx, e)
	}
	// One process playing three nodes, each with its own client as separate processes
	// would have.
	type node struct {
		id   string
		cli  *clientv3.Client
		cand *election.Candidate
	}
	var nodes []*node
	elected := make(chan string, 10)
	for i := 1; i <= 3; i++ {
		cli, err := e.newClient()
		if err != nil {
			return err
		}
		defer cli.Close()
		id := fmt.Sprintf("node-%d", i)
		cand, err := election.New(cli, electionPrefix, id, election.WithTTL(2*time.Second),
			election.OnElected(func(token int64) { elected <- id }))
		if err != nil {
			return err
		}
		defer cand.Close()
		nodes = append(nodes, &node{id: id, cli: cli, cand: cand})
	}

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = n.cand.Run(runCtx, func(leaderCtx context.Context) error {
				<-leaderCtx.Done() // lead until leadership ends
				return leaderCtx.Err()
			})
		}()
	}
	wait := func() (*node, error) {
		select {
		case id := <-elected:
			for _, n := range nodes {
				if n.id == id {
					return n, nil
				}
			}
			return nil, fmt.Errorf("unknown node %s", id)
		case <-time.After(10 * time.Second):
			return nil, fmt.Errorf("no leader elected")
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}

	first, err := wait()
	if err != nil {
		return err
	}
	e.printf("%s leads (token %d)", first.id, first.cand.Token())
	start := time.Now()
	if err := first.cand.Resign(ctx); err != nil {
		return err
	}
	second, err := wait()
	if err != nil {
		return err
	}
	e.printf("%s resigned; %s took over in %v (token %d)", first.id, second.id,
		time.Since(start).Round(time.Millisecond), second.cand.Token())

	// The leader crashes: its client dies without resigning. The others take over once
	// etcd expires its lease.
	start = time.Now()
	second.cli.Close()
	for {
		third, err := wait()
		if err != nil {
			return err
		}
		if third != second {
			e.printf("%s crashed; %s took over in %v (token %d)", second.id, third.id,
				time.Since(start).Round(time.Millisecond), third.cand.Token())
			break
		}
	}
	stop()
	return nil
}

// runElectionNode runs one candidate until ctx ends, for one process per --node-id:
// kill the leader's process and watch another take over.
func runElectionNode(ctx context.Context, e *env) error {
	cand, err := election.New(e.cli, electionPrefix, e.nodeID, election.WithTTL(5*time.Second),
		election.OnNewLeader(func(l election.Leader) {
			if l.Elected() {
				e.printf("leader is now %s (token %d)", l.ID, l.Token)
			} else {
				e.printf("no leader")
			}
		}))
	if err != nil {
		return err
	}
	defer cand.Close()
	e.printf("%s campaigning; stop it with Ctrl-C", e.nodeID)
	return cand.Run(ctx, func(leaderCtx context.Context) error {
		e.printf("%s leads (token %d)", e.nodeID, cand.Token())
		<-leaderCtx.Done()
		e.printf("%s no longer leads", e.nodeID)
		return leaderCtx.Err()
	})
}
