package maintenance_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/maintenance"
)

// Defragment refuses a cluster that cannot keep a quorum while a member pauses — here a
// single member — unless told otherwise; a dry run shows the plan.
func ExampleMaintainer_Defragment() {
	cli, err := etcdtest.NewClient()
	if err != nil {
		panic(err)
	}
	defer cli.Close()
	m, err := maintenance.New(cli)
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	_, err = m.Defragment(ctx, maintenance.DefragmentRequest{})
	fmt.Println("refused:", errors.Is(err, maintenance.ErrQuorum))

	plan, err := m.Defragment(ctx, maintenance.DefragmentRequest{DryRun: true, AllowSingleMember: true})
	if err != nil {
		panic(err)
	}
	for _, s := range plan.Plan {
		fmt.Println("plan:", s.Action, s.Member)
	}

	rep, err := m.Defragment(ctx, maintenance.DefragmentRequest{AllowSingleMember: true})
	if err != nil {
		panic(err)
	}
	fmt.Println(rep.Members[0].Name, rep.Members[0].State)
	// Output:
	// refused: true
	// plan: defragment localetcd
	// localetcd done
}

// Compact keeps the last revisions; Snapshot streams a verified copy of the database.
func ExampleMaintainer_Snapshot() {
	cli, err := etcdtest.NewClient()
	if err != nil {
		panic(err)
	}
	defer cli.Close()
	m, err := maintenance.New(cli)
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	for i := range 20 {
		if _, err := cli.Put(ctx, "/example/snapshot", fmt.Sprint(i)); err != nil {
			panic(err)
		}
	}
	c, err := m.Compact(ctx, maintenance.CompactRequest{KeepRevisions: 10})
	if err != nil {
		panic(err)
	}
	fmt.Println("revisions kept:", c.Revision-c.CompactRevision+1)

	rep, err := m.Snapshot(ctx, io.Discard, maintenance.SnapshotRequest{})
	if err != nil {
		panic(err)
	}
	fmt.Println("verified:", len(rep.SHA256) == 64, "keys:", rep.Keys > 0, "revision:", rep.Revision > 0)
	// Output:
	// revisions kept: 10
	// verified: true keys: true revision: true
}

// DisarmNoSpace refuses until the space is free again; with no alarm it does nothing.
func ExampleMaintainer_DisarmNoSpace() {
	cli, err := etcdtest.NewClient()
	if err != nil {
		panic(err)
	}
	defer cli.Close()
	m, err := maintenance.New(cli)
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	rep, err := m.DisarmNoSpace(ctx, maintenance.DisarmRequest{})
	if err != nil {
		panic(err)
	}
	fmt.Println("disarmed:", len(rep.Disarmed))
	// Output:
	// disarmed: 0
}

// A maintenance window on weekend nights in Berlin: Contains tells a scheduler whether
// it may start now, Next when it may.
func ExampleParseWindow() {
	w, err := maintenance.ParseWindow("Sat,Sun 02:00-04:00 Europe/Berlin")
	if err != nil {
		panic(err)
	}
	friday := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	fmt.Println(w.Contains(friday))
	fmt.Println(w.Next(friday).UTC())
	fmt.Println(w.Contains(time.Date(2026, 11, 28, 1, 30, 0, 0, time.UTC)))
	// Output:
	// false
	// 2026-11-28 01:00:00 +0000 UTC
	// true
}
