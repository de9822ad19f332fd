package etcdtest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// FaultKind is a kind of fault a schedule injects.
type FaultKind string

// The faults of a schedule.
const (
	StopLeader FaultKind = "stop-leader" // the etcd leader stops, then restarts
	Partition  FaultKind = "partition"   // a member is cut off from its peers, then healed
	Blackhole  FaultKind = "blackhole"   // a member's clients are cut off, then reconnected
	Silent     FaultKind = "silent"      // a member stops answering anyone, its connections open, then answers again
	NoFault    FaultKind = "none"        // nothing happens: a control run
)

// Fault is one step of a fault schedule: a fault held for For, then undone.
type Fault struct {
	Kind   FaultKind
	Member int // ignored for StopLeader: the leader of the moment stops
	For    time.Duration
	// Lead places etcd's leader before the fault, relative to the fault's member (with a
	// RunSchedule target, the member target returns). The zero value leaves it where it is.
	Lead Placement
	// Settle is added to the pause between placing etcd's leader and the fault, so that
	// the fault does not land at a fixed time after the transfer (which resets the phase
	// of every client's renewals).
	Settle time.Duration
}

// Placement says where RunSchedule puts etcd's leader before a fault: which member leads
// decides what a fault costs (a partitioned leader's leases outlive it; a stopped
// leader's clients are cut off), so runs compared with each other must agree on it.
type Placement int

const (
	LeadAnywhere  Placement = iota // etcd's leader stays where it is
	LeadOnTarget                   // the fault's member leads (StopLeader then stops it)
	LeadElsewhere                  // another member leads
)

func (p Placement) String() string {
	switch p {
	case LeadOnTarget:
		return "lead-on"
	case LeadElsewhere:
		return "lead-away"
	}
	return "lead-any"
}

// AlignLeaders draws, from seed, where etcd's leader is at each fault (on the fault's
// member or elsewhere, with equal odds) and a Settle below one second, so that every run
// of the schedule faces the same faults relative to the member it targets. Kinds and
// members are unchanged.
func AlignLeaders(faults []Fault, seed uint64) []Fault {
	r := rand.New(rand.NewPCG(seed^0x5851f42d4c957f2d, seed))
	out := make([]Fault, len(faults))
	for i, f := range faults {
		f.Lead = LeadElsewhere
		if r.IntN(2) == 0 {
			f.Lead = LeadOnTarget
		}
		f.Settle = time.Duration(r.IntN(1000)) * time.Millisecond
		out[i] = f
	}
	return out
}

func (f Fault) String() string { return fmt.Sprintf("%s(%d) %v", f.Kind, f.Member, f.For) }

// Schedule returns n faults drawn from seed, for a cluster of 3: leader stops of 2s,
// partitions of a member for ttl+1s and blackholes of a member's clients for ttl+1s
// (longer than the TTL, so leases of cut-off clients expire).
func Schedule(seed uint64, n int, ttl time.Duration) []Fault {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	kinds := []FaultKind{StopLeader, Partition, Blackhole}
	out := make([]Fault, n)
	for i := range out {
		k := kinds[r.IntN(len(kinds))]
		d := ttl + time.Second
		if k == StopLeader {
			d = 2 * time.Second
		}
		out[i] = Fault{Kind: k, Member: r.IntN(3), For: d}
	}
	return out
}

// SilentSchedule returns n faults, for a cluster of 3, of a member falling silent for
// d: the members take turns, starting from the one seed picks (seed%3), so that every 3
// faults silence each member once.
func SilentSchedule(seed uint64, n int, d time.Duration) []Fault {
	out := make([]Fault, n)
	for i := range out {
		out[i] = Fault{Kind: Silent, Member: int((seed + uint64(i)) % 3), For: d}
	}
	return out
}

// RunSchedule injects each fault in turn for its duration, undoes it, waits for a
// leader, then leaves the cluster healthy for pause (for a fault with a Lead, the pause
// comes before it, after etcd's leader was placed). With target non-nil, partitions,
// blackholes and silences hit the member target returns (when it returns one, 0 to 2)
// instead of the schedule's: the member of the current lock holder or leader, say, so
// that runs of different primitives face the same faults. Before each fault, etcd's
// leader is placed as its Lead says (see AlignLeaders), relative to that member. It
// returns when all are done or ctx ends (undoing the fault in progress). It must run on
// the test's goroutine.
func (c *Cluster) RunSchedule(ctx context.Context, faults []Fault, pause time.Duration, target func() int) {
	c.t.Helper()
	c.runSchedule(ctx, faults, pause, target, scheduleHooks{})
}

// scheduleHooks are told of a schedule's progress: next at the start of each fault's
// turn (before etcd's leader is placed), injected once the fault is in place.
type scheduleHooks struct {
	next, injected func(i int, f Fault)
}

func (c *Cluster) runSchedule(ctx context.Context, faults []Fault, pause time.Duration, target func() int, hooks scheduleHooks) {
	c.t.Helper()
	for i, f := range faults {
		if ctx.Err() != nil {
			return
		}
		f = c.aim(f, target)
		if hooks.next != nil {
			hooks.next(i, f)
		}
		if f.Lead != LeadAnywhere {
			// A leader transfer refreshes every lease: place the leader a pause ahead of
			// the fault, so that the renewals since, not the transfer, decide when a
			// lease cut off by the fault expires.
			c.place(ctx, f)
			sleep(ctx, pause+f.Settle)
			f = c.aim(f, target)
		}
		var undo func()
		switch f.Kind {
		case StopLeader:
			stopped := c.StopLeader()
			undo = func() { c.RestartMember(stopped) }
		case Partition:
			c.Cluster.Members[f.Member].InjectPartition(c.t, c.others(f.Member)...)
			undo = func() { c.Cluster.Members[f.Member].RecoverPartition(c.t, c.others(f.Member)...) }
		case Blackhole:
			c.Blackhole(f.Member)
			undo = func() { c.Unblackhole(f.Member) }
		case Silent:
			// A stopped process, a frozen machine: its clients' connections stay open
			// (new ones are accepted) and the bridge swallows whatever passes either way,
			// and its peers stop hearing from it (if it leads, it loses the lead).
			// Unblackhole closes the connections: its clients reconnect when it is back.
			c.Partition(f.Member)
			c.Blackhole(f.Member)
			undo = func() {
				c.Heal(f.Member)
				c.Unblackhole(f.Member)
			}
		default:
			undo = func() {}
		}
		if hooks.injected != nil {
			hooks.injected(i, f)
		}
		sleep(ctx, f.For)
		undo()
		c.Leader()
		if f.Lead == LeadAnywhere {
			sleep(ctx, pause)
		}
	}
}

// aim points f at the member target returns, if any.
func (c *Cluster) aim(f Fault, target func() int) Fault {
	if target != nil {
		if m := target(); m >= 0 && m < len(c.Cluster.Members) {
			f.Member = m
		}
	}
	return f
}

// place moves etcd's leader as f.Lead says, relative to f.Member, retrying a transfer
// that a loaded machine did not finish in time.
func (c *Cluster) place(ctx context.Context, f Fault) {
	c.t.Helper()
	mctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		lead := c.Leader()
		to := lead
		switch {
		case f.Lead == LeadOnTarget:
			to = f.Member
		case f.Lead == LeadElsewhere && lead == f.Member:
			to = (f.Member + 1) % len(c.Members)
		}
		if to == lead {
			return
		}
		from := c.Members[lead].Server
		err := from.MoveLeader(mctx, from.Lead(), uint64(c.Members[to].Server.MemberID()))
		if err == nil || ctx.Err() != nil {
			c.Leader()
			return
		}
		if mctx.Err() != nil {
			c.t.Fatalf("etcdtest: move etcd's leader from member %d to %d: %v", lead, to, err)
		}
		sleep(mctx, 100*time.Millisecond)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// Ledger is a counter under one key that writers advance by read-modify-write, each
// write carrying the writer's fencing token. Its history tells whether mutual exclusion
// held: every applied write advances the count by exactly one (else an update was lost)
// and carries a token no lower than the write before it (else the write was stale).
type Ledger struct {
	Key   string
	start int64
	last  atomic.Int64 // the writer of the last applied write, -1 before any

	mu      sync.Mutex
	applied []time.Time // when each write applied through Write was acknowledged
}

func (l *Ledger) appliedTimes() []time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]time.Time(nil), l.applied...)
}

// NewLedger returns a ledger on key, its history counted from now.
func NewLedger(ctx context.Context, cli *clientv3.Client, key string) (*Ledger, error) {
	r, err := cli.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	l := &Ledger{Key: key, start: r.Header.Revision + 1}
	l.last.Store(-1)
	return l, nil
}

// LastWriter returns the writer of the last write applied through Write, -1 before any.
func (l *Ledger) LastWriter() int64 { return l.last.Load() }

// WaitWrite waits until a write was applied through Write, or ctx ends: a run starts its
// faults only once its writers are under way.
func (l *Ledger) WaitWrite(ctx context.Context) error {
	for l.LastWriter() < 0 {
		t := time.NewTimer(10 * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
	return nil
}

// Write reads the count and writes count+1 with token, in a transaction guarded by
// guard, on behalf of writer (any number that names it, such as its member). It reports
// whether the write was applied.
func (l *Ledger) Write(ctx context.Context, cli *clientv3.Client, writer int, token int64, guard clientv3.Cmp) (bool, error) {
	r, err := cli.Get(ctx, l.Key)
	if err != nil {
		return false, err
	}
	n := 0
	if len(r.Kvs) == 1 {
		n, _ = strconv.Atoi(strings.SplitN(string(r.Kvs[0].Value), "/", 2)[0])
	}
	resp, err := cli.Txn(ctx).If(guard).Then(clientv3.OpPut(l.Key, fmt.Sprintf("%d/%d", n+1, token))).Commit()
	if err != nil {
		return false, err
	}
	if resp.Succeeded {
		l.last.Store(int64(writer))
		l.mu.Lock()
		l.applied = append(l.applied, time.Now())
		l.mu.Unlock()
	}
	return resp.Succeeded, nil
}

// Check reads the ledger's history and returns the writes applied, the updates lost
// (a write that did not advance the count by one) and the stale writes (a token lower
// than the one before).
func (l *Ledger) Check(ctx context.Context, cli *clientv3.Client) (committed, lost, stale int, err error) {
	end, err := cli.Get(ctx, l.Key)
	if err != nil {
		return 0, 0, 0, err
	}
	if len(end.Kvs) == 0 || end.Kvs[0].ModRevision < l.start {
		return 0, 0, 0, nil
	}
	last := end.Kvs[0].ModRevision
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wch := cli.Watch(wctx, l.Key, clientv3.WithRev(l.start))
	prevN, prevTok := -1, int64(0)
	for wr := range wch {
		if err := wr.Err(); err != nil {
			return 0, 0, 0, err
		}
		done := false
		for _, ev := range wr.Events {
			done = done || ev.Kv.ModRevision >= last
			parts := strings.SplitN(string(ev.Kv.Value), "/", 2)
			n, _ := strconv.Atoi(parts[0])
			tok, _ := strconv.ParseInt(parts[len(parts)-1], 10, 64)
			committed++
			if prevN >= 0 && n != prevN+1 {
				lost++
			}
			if tok < prevTok {
				stale++
			}
			prevN, prevTok = n, tok
		}
		if done {
			break
		}
	}
	return committed, lost, stale, ctx.Err()
}
