// Command examples runs the project's examples against etcd.
//
//	go run ./examples --example=all
//	go run ./examples --example=lock --endpoints=127.0.0.1:2379 --node-id=a
//
// With no --endpoints it starts an embedded single-node etcd, so it needs nothing
// installed. Each example lives in a file of its own named after it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-monitor/etcd-monitor/internal/localetcd"
)

// env is what every example gets: a client, the endpoints it was made from (for examples
// that play several processes and need clients of their own), and this process's node ID.
type env struct {
	cli       *clientv3.Client
	endpoints []string
	nodeID    string
	// embedded is true when the examples run on their own embedded etcd, so an example
	// may simulate several processes in one.
	embedded bool
	out      *os.File
}

// newClient returns another client of the same etcd, as a separate process would have.
func (e *env) newClient() (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{Endpoints: e.endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
}

func (e *env) printf(format string, args ...any) {
	fmt.Fprintf(e.out, format+"\n", args...)
}

type example struct {
	name string
	help string
	run  func(ctx context.Context, e *env) error
}

var registry = map[string]example{}

// register adds an example; each example file calls it from init.
func register(name, help string, run func(ctx context.Context, e *env) error) {
	registry[name] = example{name: name, help: help, run: run}
}

// order is the order in which --example=all runs them.
var order = []string{"txn", "lease", "watch", "lock", "election", "leader-task", "ha", "discovery", "lb", "config", "flags", "queue", "barrier", "ratelimit", "breaker", "maintenance"}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func run() error {
	name := flag.String("example", "all", "example to run: "+strings.Join(names(), "|")+"|all")
	endpoints := flag.String("endpoints", "", "comma-separated etcd endpoints; empty starts an embedded etcd")
	nodeID := flag.String("node-id", "", "this process's ID, for examples that run one process per node (default: the host name and PID)")
	timeout := flag.Duration("timeout", 2*time.Minute, "give up on an example after this long")
	flag.Parse()

	var todo []example
	if *name == "all" {
		for _, n := range names() {
			todo = append(todo, registry[n])
		}
	} else {
		ex, ok := registry[*name]
		if !ok {
			return fmt.Errorf("unknown example %q; choose one of %s or all", *name, strings.Join(names(), ", "))
		}
		todo = []example{ex}
	}
	if *timeout <= 0 {
		return fmt.Errorf("--timeout must be positive, got %v", *timeout)
	}

	e := &env{nodeID: *nodeID, out: os.Stdout}
	if e.nodeID == "" {
		host, _ := os.Hostname()
		e.nodeID = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if *endpoints == "" {
		node, err := localetcd.Start()
		if err != nil {
			return err
		}
		defer node.Close()
		e.endpoints = node.Endpoints()
		e.embedded = true
		e.printf("started an embedded etcd at %s", strings.Join(e.endpoints, ","))
	} else {
		e.endpoints = strings.Split(*endpoints, ",")
	}
	cli, err := e.newClient()
	if err != nil {
		return err
	}
	defer cli.Close()
	e.cli = cli

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	for _, ex := range todo {
		e.printf("\n=== %s: %s", ex.name, ex.help)
		exCtx, cancel := context.WithTimeout(ctx, *timeout)
		err := ex.run(exCtx, e)
		cancel()
		if err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("example %s: %w", ex.name, err)
		}
		if ctx.Err() != nil {
			return nil
		}
	}
	return nil
}

// names lists the registered examples, in run order first and any others after.
func names() []string {
	var out []string
	for _, n := range order {
		if _, ok := registry[n]; ok {
			out = append(out, n)
		}
	}
	var rest []string
	for n := range registry {
		if !slices.Contains(order, n) {
			rest = append(rest, n)
		}
	}
	sort.Strings(rest)
	return append(out, rest...)
}
