package election_test

import (
	"context"
	"flag"
	"fmt"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/etcd-monitor/etcd-monitor/election"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
)

const (
	progressTTL        = 2 * time.Second
	progressCandidates = 3
	progressSeed       = 9
	// progressPace is the leader's pause between writes.
	progressPace = 20 * time.Millisecond
)

// faultCount is the number of faults per side (-faults; -short skips the benchmark, as
// it does every test that starts a cluster).
var faultCount = flag.Int("faults", 5, "faults per side in BenchmarkProgressUnderFaults")

// clusterClients gives every client of BenchmarkProgressUnderFaults all three endpoints
// (-cluster-clients) instead of one member's.
var clusterClients = flag.Bool("cluster-clients", false, "clients of BenchmarkProgressUnderFaults know every member")

// progressFaults is the schedule both sides run: -faults faults (default 5) of 2-3s, each
// after 1s of health with etcd's leader placed alike for both sides (about 20s).
func progressFaults() []etcdtest.Fault {
	faults := etcdtest.AlignLeaders(etcdtest.Schedule(progressSeed, *faultCount, progressTTL), progressSeed)
	if *noFaults {
		for i := range faults {
			faults[i].Kind = etcdtest.NoFault
		}
	}
	return faults
}

// noFaults runs the same schedule with every fault replaced by nothing (-no-faults): the
// control, to tell the cost of faults from the cost of the primitive itself.
var noFaults = flag.Bool("no-faults", false, "BenchmarkProgressUnderFaults without faults, as a control")

// BenchmarkProgressUnderFaults runs 3 candidates, one per member (each client reaches one
// member), whose leader writes a guarded read-modify-write to a ledger every 20ms, on a
// 3-node cluster under a seeded schedule of faults — etcd leader stops, member
// partitions, client blackholes longer than the TTL, the last two on the member of the
// last leader to write, so that both sides face the same faults — first with our
// Candidate.Run, then with etcd's concurrency.Election with each write guarded by a
// transaction on the leader key's create revision, under the same schedule. It reports
// each side's writes committed, lost updates and stale writes (read back from the
// ledger's history), and the ratio of committed writes, ours over etcd's. Run with
// -benchtime=1x.
func BenchmarkProgressUnderFaults(b *testing.B) {
	c := etcdtest.StartCluster(b, 3)
	var ours, theirs progress
	for b.Loop() {
		ours = runProgress(b, c, "ours", oursCandidate)
		theirs = runProgress(b, c, "etcd", etcdCandidate)
	}
	b.ReportMetric(float64(ours.committed), "ours-writes")
	b.ReportMetric(float64(ours.lost), "ours-lost")
	b.ReportMetric(float64(ours.stale), "ours-stale")
	b.ReportMetric(float64(theirs.committed), "etcd-writes")
	b.ReportMetric(float64(theirs.lost), "etcd-lost")
	b.ReportMetric(float64(theirs.stale), "etcd-stale")
	if theirs.committed > 0 {
		b.ReportMetric(float64(ours.committed)/float64(theirs.committed), "ratio")
		// Per second of each side's schedule: runs on a loaded machine differ in length.
		rate := func(p progress) float64 { return float64(p.committed) / p.took.Seconds() }
		b.ReportMetric(rate(ours), "ours-writes/s")
		b.ReportMetric(rate(theirs), "etcd-writes/s")
		b.ReportMetric(rate(ours)/rate(theirs), "rate-ratio")
	}
}

type progress struct {
	committed, lost, stale int
	took                   time.Duration // the fault schedule's run, whose length varies with the machine's load
}

type candidateFunc func(ctx context.Context, b *testing.B, cli *clientv3.Client, member int, pfx, id string, l *etcdtest.Ledger, tl *tlog)

func runProgress(b *testing.B, c *etcdtest.Cluster, side string, run candidateFunc) progress {
	pfx := etcdtest.Prefix(b) + side
	admin := c.ClusterClient()
	setup, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	l, err := etcdtest.NewLedger(setup, admin, pfx+"-ledger")
	cancel()
	if err != nil {
		b.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	tl := newTlog()
	var wg sync.WaitGroup
	for i := 0; i < progressCandidates; i++ {
		cli := c.Client(i % 3)
		if *clusterClients {
			cli = c.ClusterClient()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			run(ctx, b, cli, i%3, pfx, fmt.Sprintf("c%d", i), l, tl)
		}()
	}
	// Faults start once the first write is applied: both sides face them under way.
	warm, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = l.WaitWrite(warm)
	cancel()
	if err != nil {
		stop()
		wg.Wait()
		b.Fatalf("%s: no write within 30s: %v", side, err)
	}
	faults := progressFaults()
	calls := 0 // two per fault: to place etcd's leader, then to inject the fault
	start := time.Now()
	c.RunSchedule(ctx, faults, time.Second, func() int {
		m := int(l.LastWriter())
		if *clusterClients {
			m = -1
		}
		f := faults[calls/2]
		if m >= 0 {
			f.Member = m
		}
		if calls%2 == 0 {
			tl.add("sched", "placing etcd's leader for fault %d (lead=%d), then a pause of 1s+%v", calls/2, f.Lead, f.Settle)
		} else {
			tl.add("sched", "FAULT %d: %v", calls/2, f)
		}
		calls++
		return m
	})
	tl.add("sched", "end")
	p := progress{took: time.Since(start)}
	stop()
	wg.Wait()
	check, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p.committed, p.lost, p.stale, err = l.Check(check, admin)
	if err != nil {
		b.Fatal(err)
	}
	tl.print(side)
	b.Logf("%s: %d writes in %v, %d lost, %d stale", side, p.committed, p.took.Round(time.Millisecond), p.lost, p.stale)
	return p
}

func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func oursCandidate(ctx context.Context, b *testing.B, cli *clientv3.Client, member int, pfx, id string, l *etcdtest.Ledger, tl *tlog) {
	wl := &writeLog{t: tl, who: id}
	cand, err := election.New(cli, pfx, id, election.WithTTL(progressTTL), election.WithLogger(tl.logger(id)),
		election.OnElected(func(tok int64) { tl.add(id, "elected %d", tok) }),
		election.OnDefeat(func(err error) { tl.add(id, "defeat: %v", err) }))
	if err != nil {
		b.Error(err)
		return
	}
	defer cand.Close()
	_ = cand.Run(ctx, func(leaderCtx context.Context) error {
		for leaderCtx.Err() == nil {
			wctx, cancel := context.WithTimeout(leaderCtx, time.Second)
			ok, err := l.Write(wctx, cli, member, cand.Token(), cand.LeaderCmp())
			cancel()
			wl.log(ok, err)
			pause(leaderCtx, progressPace)
		}
		return leaderCtx.Err()
	})
}

func etcdCandidate(ctx context.Context, b *testing.B, cli *clientv3.Client, member int, pfx, id string, l *etcdtest.Ledger, tl *tlog) {
	wl := &writeLog{t: tl, who: id}
	for ctx.Err() == nil {
		// The context bounds the grant and the keep-alives: it must outlive the session.
		s, err := concurrency.NewSession(cli, concurrency.WithTTL(int(progressTTL/time.Second)), concurrency.WithContext(ctx))
		if err != nil {
			tl.add(id, "session FAIL: %v", err)
			pause(ctx, 50*time.Millisecond)
			continue
		}
		tl.add(id, "session %x", int64(s.Lease()))
		ended, stop := context.WithCancel(ctx)
		go func() {
			select {
			case <-s.Done():
			case <-ended.Done():
			}
			stop()
		}()
		e := concurrency.NewElection(s, pfx)
		for ended.Err() == nil {
			// etcd's Campaign does not notice its own session's end: bound it by it.
			if err := e.Campaign(ended, id); err != nil {
				tl.add(id, "campaign FAIL: %v", err)
				pause(ended, 50*time.Millisecond)
				continue
			}
			tl.add(id, "elected %d", e.Rev())
			guard := clientv3.Compare(clientv3.CreateRevision(e.Key()), "=", e.Rev())
			for ended.Err() == nil {
				wctx, cancel := context.WithTimeout(ended, time.Second)
				ok, err := l.Write(wctx, cli, member, e.Rev(), guard)
				cancel()
				wl.log(ok, err)
				if err == nil && !ok {
					break // no longer the leader
				}
				pause(ended, progressPace)
			}
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			_ = e.Resign(rctx)
			cancel()
		}
		stop()
		tl.add(id, "session ended")
		s.Orphan()
		rctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, _ = cli.Revoke(rctx, s.Lease())
		cancel()
	}
}
