package discovery_test

import (
	"context"
	"fmt"
	"time"

	"github.com/etcd-monitor/etcd-monitor/discovery"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
)

func Example() {
	cli, err := etcdtest.NewClient()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	reg, err := discovery.NewRegistrar(cli, "/example/services", discovery.WithTTL(5*time.Second))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer reg.Close()
	for i, addr := range []string{"10.0.0.1", "10.0.0.2"} {
		inst := discovery.Instance{Service: "payment", ID: fmt.Sprint("p", i), Address: addr, Port: 8080}
		if err := reg.Register(ctx, inst); err != nil {
			fmt.Println(err)
			return
		}
	}

	res, err := discovery.NewResolver(cli, "/example/services")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer res.Close()
	if err := res.WaitReady(ctx); err != nil {
		fmt.Println(err)
		return
	}
	insts, _ := res.Discover("payment")
	for _, inst := range insts {
		fmt.Println(inst.ID, inst.Addr())
	}
	// Output:
	// p0 10.0.0.1:8080
	// p1 10.0.0.2:8080
}

func ExampleBalancer() {
	cli, err := etcdtest.NewClient()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	reg, _ := discovery.NewRegistrar(cli, "/example/lb")
	defer reg.Close()
	for _, id := range []string{"a", "b", "c"} {
		_ = reg.Register(ctx, discovery.Instance{Service: "api", ID: id, Address: "127.0.0.1", Port: 9000})
	}
	res, _ := discovery.NewResolver(cli, "/example/lb")
	defer res.Close()
	_ = res.WaitReady(ctx)
	lb, _ := discovery.NewBalancer(res, discovery.RoundRobin)
	defer lb.Close()
	for range 4 {
		sel, err := lb.Pick("api")
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Print(sel.Instance.ID, " ")
		sel.Report(nil)
	}
	fmt.Println()
	// Output: a b c a
}
