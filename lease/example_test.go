package lease_test

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/lease"
)

// A key attached to a kept lease lives as long as the Keeper; Close revokes the lease
// and the key goes with it.
func ExampleNew() {
	cli, err := etcdtest.NewClient()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cli.Close()
	ctx := context.Background()

	k, err := lease.New(ctx, cli, 5*time.Second)
	if err != nil {
		fmt.Println(err)
		return
	}
	_, err = cli.Put(ctx, "/example/lease/worker", "alive", clientv3.WithLease(k.ID()))
	fmt.Println("put:", err)

	fmt.Println("close:", k.Close())
	fmt.Println("err:", k.Err())
	resp, err := cli.Get(ctx, "/example/lease/worker")
	fmt.Println("keys left:", len(resp.Kvs), err)
	// Output:
	// put: <nil>
	// close: <nil>
	// err: lease: keeper closed
	// keys left: 0 <nil>
}

// With WithRegrant, a lease revoked from elsewhere is replaced and the hook re-attaches
// the key to the new lease.
func ExampleWithRegrant() {
	cli, err := etcdtest.NewClient()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cli.Close()
	ctx := context.Background()
	const key = "/example/lease/registered"

	attached := make(chan clientv3.LeaseID, 1)
	k, err := lease.New(ctx, cli, 5*time.Second, lease.WithRegrant(func(ctx context.Context, id clientv3.LeaseID) error {
		_, err := cli.Put(ctx, key, "me", clientv3.WithLease(id))
		if err == nil {
			attached <- id
		}
		return err
	}))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer k.Close()
	first, lost := k.ID(), k.Lost()
	if _, err := cli.Put(ctx, key, "me", clientv3.WithLease(first)); err != nil {
		fmt.Println(err)
		return
	}

	_, err = cli.Revoke(ctx, first) // as an operator might
	fmt.Println("revoked:", err)
	<-lost
	id := <-attached
	fmt.Println("new lease:", id != first, id == k.ID())
	resp, err := cli.Get(ctx, key)
	fmt.Println("key back:", err == nil && len(resp.Kvs) == 1 && resp.Kvs[0].Lease == int64(id))
	// Output:
	// revoked: <nil>
	// new lease: true true
	// key back: true
}
