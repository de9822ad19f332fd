package election_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-monitor/etcd-monitor/election"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
)

func ExampleCandidate_Campaign() {
	cli, err := etcdtest.NewClient()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	a, _ := election.New(cli, "/example/election/campaign", "node-a")
	defer a.Close()
	b, _ := election.New(cli, "/example/election/campaign", "node-b")
	defer b.Close()

	if err := a.Campaign(ctx); err != nil {
		fmt.Println(err)
		return
	}
	l, _ := b.Leader(ctx)
	fmt.Println("leader:", l.ID)

	elected := make(chan error, 1)
	go func() { elected <- b.Campaign(ctx) }()
	// Writes fenced by leadership: applied only while a still leads.
	_, err = a.Do(ctx, clientv3.OpPut("/example/election/campaign-owner", "node-a"))
	fmt.Println("a writes:", err)
	tokenA := a.Token()
	_ = a.Resign(ctx)
	if err := <-elected; err != nil {
		fmt.Println(err)
		return
	}
	l, _ = b.Leader(ctx)
	fmt.Println("leader:", l.ID, "token above a's:", b.Token() > tokenA)
	_, err = a.Do(ctx, clientv3.OpPut("/example/election/campaign-owner", "node-a"))
	fmt.Println("a writes:", errors.Is(err, election.ErrNotLeader))
	// Output:
	// leader: node-a
	// a writes: <nil>
	// leader: node-b token above a's: true
	// a writes: true
}

func ExampleCandidate_Run() {
	cli, err := etcdtest.NewClient()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	c, _ := election.New(cli, "/example/election/run", "node-a")
	defer c.Close()
	// fn runs while leading; its context ends when leadership does. Returning nil
	// resigns and ends Run.
	err = c.Run(ctx, func(leaderCtx context.Context) error {
		fmt.Println("leading:", c.IsLeader())
		return nil
	})
	fmt.Println("run:", err, "leading:", c.IsLeader())
	// Output:
	// leading: true
	// run: <nil> leading: false
}

func ExampleObserver() {
	cli, err := etcdtest.NewClient()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	obs, _ := election.NewObserver(cli, "/example/election/observe")
	defer obs.Close()
	fmt.Println("elected:", (<-obs.Changes()).Elected())

	c, _ := election.New(cli, "/example/election/observe", "node-a")
	defer c.Close()
	_ = c.Campaign(ctx)
	fmt.Println("leader:", (<-obs.Changes()).ID)
	_ = c.Resign(ctx)
	fmt.Println("elected:", (<-obs.Changes()).Elected())
	// Output:
	// elected: false
	// leader: node-a
	// elected: false
}

func ExampleLeaderTask() {
	cli, err := etcdtest.NewClient()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	c, _ := election.New(cli, "/example/election/task", "node-a")
	defer c.Close()
	runs := 0
	runCtx, stop := context.WithCancel(ctx)
	task, _ := election.NewLeaderTask(c, 10*time.Millisecond, func(leaderCtx context.Context) error {
		runs++
		if runs == 3 {
			stop()
		}
		return nil
	})
	err = task.Run(runCtx)
	fmt.Println(runs, errors.Is(err, context.Canceled))
	// Output:
	// 3 true
}
