// Package maintcli is the command line of the maintenance package: the etcd-monitor
// subcommands defrag, compact, snapshot save, alarm list|disarm, member
// list|add|promote|remove and move-leader. The daemon's main hands them to Run.
//
// Every subcommand takes the daemon's connection flags (--endpoints, --dial-timeout,
// --cacert, --cert, --key), --output=table|json and --dry-run, which prints the plan and
// changes nothing. Exit status: 0 done, 1 refused or failed (the report, as far as the
// operation got, is still printed), 2 a usage error.
package maintcli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-monitor/etcd-monitor/health"
	"github.com/etcd-monitor/etcd-monitor/maintenance"
)

// Commands are the first arguments Run handles.
var Commands = []string{"defrag", "compact", "snapshot", "alarm", "member", "move-leader"}

// IsCommand reports whether name is one of Commands.
func IsCommand(name string) bool { return slices.Contains(Commands, name) }

// Exit statuses of Run.
const (
	ExitOK     = 0
	ExitFailed = 1
	ExitUsage  = 2
)

const usage = `Usage: etcd-monitor <command> [flags]

Guarded maintenance of an etcd cluster (each command checks the cluster's health first):

  defrag [--move-leader] [--members=ID,...] [--allow-single-member] [--member-timeout=5m]
      defragment one member at a time, followers first, the leader last
  compact --keep-revisions=N | --keep-newer-than=DURATION [--physical]
      discard the history older than what is kept
  snapshot save PATH [--member=ID]
      save a verified snapshot (SHA-256 trailer and etcd's integrity check)
  alarm list
  alarm disarm [--max-usage=0.8] [--quota-bytes=N]
      disarm NOSPACE once every member is back under the share of its quota
  member list
  member add PEER_URL[,PEER_URL...]      add a learner
  member promote ID [--timeout=1m]       promote a learner once it has caught up
  member remove ID                       refused when it would cost quorum
  move-leader [ID]                       to ID, or to the most up-to-date follower

Member IDs are hexadecimal, as etcdctl prints them.

Flags of every command:
`

// Run runs one maintenance command: args[0] is the command (one of Commands), the rest
// its arguments and flags. It writes the report to stdout and problems to stderr, and
// returns the exit status.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || !IsCommand(args[0]) {
		newFlags(stderr).fs.Usage()
		return ExitUsage
	}
	cmd := args[0]
	f := newFlags(stderr)
	var sub func(context.Context, *env) (any, error)
	var err error
	switch cmd {
	case "defrag":
		sub, err = f.defrag(args[1:])
	case "compact":
		sub, err = f.compact(args[1:])
	case "snapshot":
		sub, err = f.snapshot(args[1:])
	case "alarm":
		sub, err = f.alarm(args[1:])
	case "member":
		sub, err = f.member(args[1:])
	case "move-leader":
		sub, err = f.moveLeader(args[1:])
	}
	if errors.Is(err, flag.ErrHelp) {
		return ExitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "etcd-monitor %s: %v\n", cmd, err)
		return ExitUsage
	}
	if f.output != "table" && f.output != "json" {
		fmt.Fprintf(stderr, "etcd-monitor %s: --output must be table or json, got %q\n", cmd, f.output)
		return ExitUsage
	}

	e, err := f.connect()
	if err != nil {
		fmt.Fprintf(stderr, "etcd-monitor %s: %v\n", cmd, err)
		return ExitFailed
	}
	defer e.cli.Close()
	rep, err := sub(ctx, e)
	// A failed operation's report is printed in JSON (for scripts) and, in a table, only
	// for a defragmentation, whose report says how far it got.
	_, progress := rep.(*maintenance.DefragmentReport)
	if rep != nil && !isNil(rep) && (err == nil || f.output == "json" || progress) {
		if werr := write(stdout, f.output, rep); werr != nil {
			fmt.Fprintf(stderr, "etcd-monitor %s: %v\n", cmd, werr)
			return ExitFailed
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "etcd-monitor %s: %v\n", cmd, err)
		if errors.Is(err, maintenance.ErrInvalidArgument) {
			return ExitUsage
		}
		return ExitFailed
	}
	return ExitOK
}

// env is what a command runs with.
type env struct {
	cli *clientv3.Client
	m   *maintenance.Maintainer
}

// flags are the flags every command shares, and the flag set of the one being parsed.
type flags struct {
	fs          *flag.FlagSet
	endpoints   string
	dialTimeout time.Duration
	cacert      string
	cert        string
	key         string
	output      string
	dryRun      bool
	settle      time.Duration
	memberEPs   string
}

func newFlags(stderr io.Writer) *flags {
	f := &flags{fs: flag.NewFlagSet("etcd-monitor", flag.ContinueOnError)}
	f.fs.SetOutput(stderr)
	f.fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		f.fs.PrintDefaults()
	}
	f.fs.StringVar(&f.endpoints, "endpoints", "127.0.0.1:2379", "comma-separated etcd endpoints")
	f.fs.DurationVar(&f.dialTimeout, "dial-timeout", 5*time.Second, "timeout to connect to etcd")
	f.fs.StringVar(&f.cacert, "cacert", "", "CA bundle that signs etcd's certificates (PEM)")
	f.fs.StringVar(&f.cert, "cert", "", "client certificate for etcd (PEM)")
	f.fs.StringVar(&f.key, "key", "", "client key for etcd (PEM)")
	f.fs.StringVar(&f.output, "output", "table", "output format: table or json")
	f.fs.BoolVar(&f.dryRun, "dry-run", false, "check the guard and print the plan; change nothing")
	f.fs.DurationVar(&f.settle, "settle-timeout", maintenance.DefaultSettleTimeout, "how long to wait for the cluster to be healthy again between steps")
	f.fs.StringVar(&f.memberEPs, "member-endpoints", "", "name=endpoint,... for members whose advertised client URLs are not reachable from here (NAT, proxies)")
	return f
}

// parse parses args, flags and positional arguments in any order, and returns the
// positional ones.
func (f *flags) parse(args []string) ([]string, error) {
	var pos []string
	for {
		if err := f.fs.Parse(args); err != nil {
			return nil, err
		}
		args = f.fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func (f *flags) connect() (*env, error) {
	eps := splitList(f.endpoints)
	if len(eps) == 0 {
		return nil, errors.New("--endpoints: no endpoint")
	}
	tlsCfg, err := f.tls()
	if err != nil {
		return nil, err
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: f.dialTimeout, TLS: tlsCfg, Logger: zap.NewNop()})
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", f.endpoints, err)
	}
	var hopts []health.Option
	if f.memberEPs != "" {
		byName := map[string]string{}
		for _, kv := range splitList(f.memberEPs) {
			name, ep, ok := strings.Cut(kv, "=")
			if !ok || name == "" || ep == "" {
				cli.Close()
				return nil, fmt.Errorf("--member-endpoints: %q is not name=endpoint", kv)
			}
			byName[name] = ep
		}
		hopts = append(hopts, health.WithEndpoints(byName))
	}
	if tlsCfg != nil {
		hopts = append(hopts, health.WithHTTPClient(httpsClient(tlsCfg)))
	}
	ch, err := health.New(cli, hopts...)
	if err != nil {
		cli.Close()
		return nil, err
	}
	m, err := maintenance.New(cli, maintenance.WithChecker(ch), maintenance.WithSettleTimeout(f.settle))
	if err != nil {
		cli.Close()
		return nil, err
	}
	return &env{cli: cli, m: m}, nil
}

func (f *flags) tls() (*tls.Config, error) {
	if f.cert == "" && f.key == "" && f.cacert == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if (f.cert == "") != (f.key == "") {
		return nil, errors.New("--cert and --key go together")
	}
	if f.cert != "" {
		pair, err := tls.LoadX509KeyPair(f.cert, f.key)
		if err != nil {
			return nil, fmt.Errorf("--cert/--key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	if f.cacert != "" {
		pem, err := os.ReadFile(f.cacert)
		if err != nil {
			return nil, fmt.Errorf("--cacert: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--cacert: %s: no PEM certificates", f.cacert)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func parseID(s string) (health.ID, error) {
	var id health.ID
	if err := id.UnmarshalText([]byte(strings.TrimPrefix(strings.ToLower(s), "0x"))); err != nil || id == 0 {
		return 0, fmt.Errorf("member ID %q: want a hexadecimal ID as etcdctl prints it", s)
	}
	return id, nil
}

func write(w io.Writer, output string, rep any) error {
	if output == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	return writeTable(w, rep)
}

func isNil(v any) bool {
	switch r := v.(type) {
	case *maintenance.DefragmentReport:
		return r == nil
	case *maintenance.CompactReport:
		return r == nil
	case *maintenance.SnapshotReport:
		return r == nil
	case *maintenance.AlarmReport:
		return r == nil
	case *maintenance.DisarmReport:
		return r == nil
	case *maintenance.MemberList:
		return r == nil
	case *maintenance.MemberReport:
		return r == nil
	case *maintenance.MoveLeaderReport:
		return r == nil
	}
	return false
}
