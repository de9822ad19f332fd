package etcdtest

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// ProgressConfig is a comparison of how far primitives get under faults (RunProgress).
type ProgressConfig struct {
	Writers int           // concurrent writers per side (lock workers, candidates)
	TTL     time.Duration // the lease TTL the writers use; faults outlast it
	Seed    uint64        // the schedule of round r is drawn from Seed+r
	Faults  int           // faults per side and round (-faults, default 5)
	Rounds  int           // rounds, each running every side once (-rounds, default 4: each of two sides goes first as often)
	// NoFaults replaces every fault by nothing (-no-faults): the control, to tell the cost
	// of faults from the cost of the primitive itself.
	NoFaults bool
	// ClusterClients gives every writer's client all members (-cluster-clients) instead of
	// one member's; partitions and blackholes then hit the schedule's members.
	ClusterClients bool
	// Silent, if not zero, makes every fault a member falling silent for Silent
	// (SilentSchedule: the members in turn) instead of Schedule's mix.
	Silent time.Duration
	// Timeline prints every side's timeline of each round to stderr (-timeline).
	Timeline bool
}

// ProgressFlags registers the flags of a progress benchmark on fs (flag.CommandLine in a
// test package's variable declarations) and returns the configuration they fill in;
// the benchmark sets Writers, TTL and Seed.
func ProgressFlags(fs *flag.FlagSet) *ProgressConfig {
	cfg := &ProgressConfig{}
	fs.IntVar(&cfg.Faults, "faults", 5, "faults per side and round in BenchmarkProgressUnderFaults")
	fs.IntVar(&cfg.Rounds, "rounds", 4, "rounds of BenchmarkProgressUnderFaults, alternating which side goes first")
	fs.BoolVar(&cfg.NoFaults, "no-faults", false, "the progress benchmarks without faults, as a control")
	fs.BoolVar(&cfg.ClusterClients, "cluster-clients", false, "clients of BenchmarkProgressUnderFaults know every member")
	fs.BoolVar(&cfg.Timeline, "timeline", false, "the progress benchmarks print a timeline of faults and writes")
	return cfg
}

// ProgressSide is one primitive under comparison: Run is started once per writer and
// returns when ctx ends, releasing whatever it holds.
type ProgressSide struct {
	Name string
	Run  func(ctx context.Context, w *ProgressWriter)
}

// ProgressWriter is what one writer of a side gets: its client, the key prefix of the
// side's round (a lock's key, an election's prefix), and the ledger to write to.
type ProgressWriter struct {
	Client   *clientv3.Client
	Member   int    // the member the client reaches: the writer's name in the ledger
	ID       string // w0, w1, …
	Prefix   string
	TTL      time.Duration
	Timeline *Timeline // nil unless -timeline
	tb       testing.TB
	ledger   *Ledger
	log      *WriteLog
	acquired *stamps
}

// Acquired records that the writer acquired what its writes are guarded by (a lock),
// with token: the pauses between acquisitions after each fault are reported beside the
// pauses between applied writes, which also wait for the writes themselves.
func (w *ProgressWriter) Acquired(token int64) {
	w.acquired.add(time.Now())
	w.Add("acquired %d", token)
}

// stamps is a list of times safe for concurrent use.
type stamps struct {
	mu sync.Mutex
	t  []time.Time
}

func (s *stamps) add(t time.Time) {
	s.mu.Lock()
	s.t = append(s.t, t)
	s.mu.Unlock()
}

func (s *stamps) times() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.t...)
}

// Write advances the ledger with token under guard (Ledger.Write) and records the
// outcome on the timeline.
func (w *ProgressWriter) Write(ctx context.Context, token int64, guard clientv3.Cmp) (bool, error) {
	ok, err := w.ledger.Write(ctx, w.Client, w.Member, token, guard)
	w.log.Log(ok, err)
	return ok, err
}

// Error fails the benchmark (it may be called from the writer's goroutine).
func (w *ProgressWriter) Error(args ...any) { w.tb.Error(args...) }

// Add records an event of this writer on the timeline.
func (w *ProgressWriter) Add(format string, args ...any) { w.Timeline.Add(w.ID, format, args...) }

// Logger returns a logger whose lines go to the timeline (a no-op without one).
func (w *ProgressWriter) Logger() *zap.Logger { return w.Timeline.Logger(w.ID) }

// ProgressResult is what a side achieved, summed over rounds.
type ProgressResult struct {
	Name                   string
	Committed, Lost, Stale int
	Took                   time.Duration // the schedules' runs, whose length varies with the machine's load
	Outage                 time.Duration // summed over faults: the longest pause between applied writes after each
	Longest                time.Duration // the longest of those pauses
	Faulted                int           // the faults injected
	// Acquisitions counts the writers' Acquired calls; AcqOutage and AcqLongest are
	// Outage and Longest for the pauses between acquisitions.
	Acquisitions          int
	AcqOutage, AcqLongest time.Duration
}

func (r *ProgressResult) add(o ProgressResult) {
	r.Committed += o.Committed
	r.Lost += o.Lost
	r.Stale += o.Stale
	r.Took += o.Took
	r.Outage += o.Outage
	r.Longest = max(r.Longest, o.Longest)
	r.Faulted += o.Faulted
	r.Acquisitions += o.Acquisitions
	r.AcqOutage += o.AcqOutage
	r.AcqLongest = max(r.AcqLongest, o.AcqLongest)
}

// RunProgress runs every side cfg.Rounds times on c under a seeded schedule of faults —
// etcd leader stops, member partitions, client blackholes longer than the TTL, the last
// two on the member of the last writer (or, with cfg.Silent, members falling silent in
// turn), with etcd's leader placed alike before each —
// the same schedule for every side of a round, a new one for each round, and the order
// of the sides rotating from round to round, so that neither always runs on the warmer
// cluster. Each writer of a side reaches one member (w%3), unless ClusterClients. It
// returns each side's totals and prints each round's figures and, per fault, the longest
// pause between applied writes.
func RunProgress(b *testing.B, c *Cluster, cfg ProgressConfig, sides ...ProgressSide) []ProgressResult {
	b.Helper()
	totals := make([]ProgressResult, len(sides))
	for i, s := range sides {
		totals[i].Name = s.Name
	}
	for r := 0; r < cfg.Rounds; r++ {
		seed := cfg.Seed + uint64(r)
		faults := Schedule(seed, cfg.Faults, cfg.TTL)
		if cfg.Silent > 0 {
			faults = SilentSchedule(seed, cfg.Faults, cfg.Silent)
		}
		faults = AlignLeaders(faults, seed)
		if cfg.NoFaults {
			for i := range faults {
				faults[i].Kind = NoFault
			}
		}
		round := make([]sideRun, len(sides))
		for k := range sides {
			i := (k + r) % len(sides)
			round[i] = runSide(b, c, cfg, fmt.Sprintf("r%d-%s", r, sides[i].Name), sides[i], faults)
			totals[i].add(round[i].ProgressResult)
		}
		logRound(r, seed, round, faults, sides[r%len(sides)].Name)
	}
	return totals
}

// BenchProgress is the body of a progress benchmark: it starts a 3-node cluster, runs
// RunProgress on it for b's loop and reports the last run (ReportProgress, and
// ReportGaps when members fall silent, cfg.Silent).
func BenchProgress(b *testing.B, cfg ProgressConfig, sides ...ProgressSide) {
	c := StartCluster(b, 3)
	var res []ProgressResult
	for b.Loop() {
		res = RunProgress(b, c, cfg, sides...)
	}
	ReportProgress(b, res)
	if cfg.Silent > 0 {
		ReportGaps(b, res)
	}
}

// ReportProgress reports each side's totals (<name>-writes, -lost, -stale, -writes/s)
// and, for two sides, the ratio of the first's committed writes to the second's (ratio),
// per second of schedule too (rate-ratio).
func ReportProgress(b *testing.B, res []ProgressResult) {
	rate := func(p ProgressResult) float64 { return float64(p.Committed) / p.Took.Seconds() }
	for _, p := range res {
		b.ReportMetric(float64(p.Committed), p.Name+"-writes")
		b.ReportMetric(float64(p.Lost), p.Name+"-lost")
		b.ReportMetric(float64(p.Stale), p.Name+"-stale")
		if p.Took > 0 {
			b.ReportMetric(rate(p), p.Name+"-writes/s")
		}
	}
	if len(res) == 2 && res[1].Committed > 0 && res[0].Took > 0 {
		b.ReportMetric(float64(res[0].Committed)/float64(res[1].Committed), "ratio")
		b.ReportMetric(rate(res[0])/rate(res[1]), "rate-ratio")
	}
}

// ReportGaps reports each side's longest pause between applied writes after any fault
// (<name>-longest-gap-s) and the mean over faults of the longest pause after each
// (<name>-mean-gap-s), and, for two sides, the first's over the second's (gap-ratio,
// mean-gap-ratio; below 1 the first side stalls less); then the same for the pauses
// between acquisitions (-acq-gap-), when the sides record them (Acquired). A fault's
// pause is counted from the last write (acquisition) before it to the next fault's turn
// or the schedule's end, which come as soon as the fault is undone and the cluster has
// a leader when etcd's leader is placed (AlignLeaders): a pause that lasts beyond it is
// cut there.
func ReportGaps(b *testing.B, res []ProgressResult) {
	reportGaps(b, res, "gap", func(p ProgressResult) (time.Duration, time.Duration) { return p.Outage, p.Longest })
	for _, p := range res {
		if p.Acquisitions == 0 {
			return
		}
	}
	reportGaps(b, res, "acq-gap", func(p ProgressResult) (time.Duration, time.Duration) { return p.AcqOutage, p.AcqLongest })
}

func reportGaps(b *testing.B, res []ProgressResult, unit string, gaps func(ProgressResult) (sum, longest time.Duration)) {
	mean := func(p ProgressResult) float64 {
		sum, _ := gaps(p)
		return sum.Seconds() / float64(p.Faulted)
	}
	longest := func(p ProgressResult) float64 {
		_, l := gaps(p)
		return l.Seconds()
	}
	for _, p := range res {
		b.ReportMetric(longest(p), p.Name+"-longest-"+unit+"-s")
		if p.Faulted > 0 {
			b.ReportMetric(mean(p), p.Name+"-mean-"+unit+"-s")
		}
	}
	if len(res) == 2 && longest(res[1]) > 0 && res[0].Faulted > 0 && res[1].Faulted > 0 && mean(res[1]) > 0 {
		b.ReportMetric(longest(res[0])/longest(res[1]), unit+"-ratio")
		b.ReportMetric(mean(res[0])/mean(res[1]), "mean-"+unit+"-ratio")
	}
}

type sideRun struct {
	ProgressResult
	faultAt []time.Time     // when each fault was injected
	endAt   []time.Time     // when each fault's window ended (the next placement, or the end)
	gaps    []time.Duration // per fault, the longest pause between applied writes
	acqGaps []time.Duration // per fault, the longest pause between acquisitions, if recorded
}

func runSide(b *testing.B, c *Cluster, cfg ProgressConfig, label string, side ProgressSide, faults []Fault) sideRun {
	b.Helper()
	pfx := Prefix(b) + side.Name
	admin := c.ClusterClient()
	setup, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	l, err := NewLedger(setup, admin, pfx+"-ledger")
	cancel()
	if err != nil {
		b.Fatal(err)
	}
	var tl *Timeline
	if cfg.Timeline {
		tl = NewTimeline()
	}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var clients []*clientv3.Client
	acquired := &stamps{}
	for i := 0; i < cfg.Writers; i++ {
		eps := []string{c.Members[i%3].GRPCURL}
		if cfg.ClusterClients {
			eps = c.Endpoints()
		}
		cli := c.newClient(eps)
		clients = append(clients, cli)
		id := fmt.Sprintf("w%d", i)
		w := &ProgressWriter{Client: cli, Member: i % 3, ID: id, Prefix: pfx, TTL: cfg.TTL, Timeline: tl,
			tb: b, ledger: l, log: NewWriteLog(tl, id), acquired: acquired}
		wg.Add(1)
		go func() {
			defer wg.Done()
			side.Run(ctx, w)
		}()
	}
	// Faults start once the first write is applied: every side faces them under way.
	warm, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = l.WaitWrite(warm)
	cancel()
	if err != nil {
		stop()
		wg.Wait()
		b.Fatalf("%s: no write within 30s: %v", label, err)
	}
	run := sideRun{ProgressResult: ProgressResult{Name: side.Name}}
	start := time.Now()
	c.runSchedule(ctx, faults, time.Second, func() int {
		if cfg.ClusterClients {
			return -1
		}
		return int(l.LastWriter())
	}, scheduleHooks{
		next: func(i int, f Fault) {
			if i > 0 {
				run.endAt = append(run.endAt, time.Now())
			}
			if f.Lead != LeadAnywhere {
				tl.Add("sched", "placing etcd's leader for fault %d (%s), then a pause of 1s+%v", i, f.Lead, f.Settle)
			}
		},
		injected: func(i int, f Fault) {
			tl.Add("sched", "FAULT %d: %v", i, f)
			run.faultAt = append(run.faultAt, time.Now())
		},
	})
	end := time.Now()
	tl.Add("sched", "end")
	for len(run.endAt) < len(run.faultAt) {
		run.endAt = append(run.endAt, end)
	}
	run.Took = end.Sub(start)
	stop()
	wg.Wait()
	for _, cli := range clients {
		_ = cli.Close()
	}
	check, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	run.Committed, run.Lost, run.Stale, err = l.Check(check, admin)
	if err != nil {
		b.Fatal(err)
	}
	applied := l.appliedTimes()
	for i, at := range run.faultAt {
		g := longestPause(applied, at, run.endAt[i])
		run.gaps = append(run.gaps, g)
		run.Outage += g
		run.Longest = max(run.Longest, g)
	}
	run.Faulted = len(run.faultAt)
	if acq := acquired.times(); len(acq) > 0 {
		run.Acquisitions = len(acq)
		for i, at := range run.faultAt {
			g := longestPause(acq, at, run.endAt[i])
			run.acqGaps = append(run.acqGaps, g)
			run.AcqOutage += g
			run.AcqLongest = max(run.AcqLongest, g)
		}
	}
	tl.Print(os.Stderr, label)
	return run
}

// longestPause returns the longest interval in [from, to] without an applied write,
// counting from the last write before from.
func longestPause(applied []time.Time, from, to time.Time) time.Duration {
	prev := from
	for _, t := range applied {
		if !t.After(from) {
			prev = t
		}
	}
	var longest time.Duration
	for _, t := range applied {
		if !t.After(from) {
			continue
		}
		if t.After(to) {
			break
		}
		longest = max(longest, t.Sub(prev))
		prev = t
	}
	return max(longest, to.Sub(prev))
}

func logRound(r int, seed uint64, round []sideRun, faults []Fault, first string) {
	var sb strings.Builder
	fmt.Fprintf(&sb, "round %d (seed %d, %s first):", r, seed, first)
	for _, s := range round {
		fmt.Fprintf(&sb, " %s %d writes in %v (%d lost, %d stale);", s.Name, s.Committed, s.Took.Round(time.Millisecond), s.Lost, s.Stale)
	}
	if len(round) == 2 && round[1].Committed > 0 {
		fmt.Fprintf(&sb, " ratio %.2f", float64(round[0].Committed)/float64(round[1].Committed))
	}
	for i, f := range faults {
		fmt.Fprintf(&sb, "\n  fault %d %-11s %-9s longest pause between writes:", i, f.Kind, f.Lead)
		for _, s := range round {
			if i < len(s.gaps) {
				fmt.Fprintf(&sb, " %s %v", s.Name, s.gaps[i].Round(time.Millisecond))
			}
		}
		head := "; between acquisitions:"
		for _, s := range round {
			if i < len(s.acqGaps) {
				fmt.Fprintf(&sb, "%s %s %v", head, s.Name, s.acqGaps[i].Round(time.Millisecond))
				head = ""
			}
		}
	}
	// To stderr: a benchmark's log is cut to its first lines.
	fmt.Fprintln(os.Stderr, sb.String())
}
