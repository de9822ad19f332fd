package election_test

import (
	"context"
	"flag"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/etcd-monitor/etcd-monitor/election"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
)

const (
	progressTTL = 2 * time.Second
	// progressPace is the leader's pause between writes.
	progressPace = 20 * time.Millisecond
	// silentFor is how long a member is silent in BenchmarkProgressSilentMember.
	silentFor = 8 * time.Second
)

// progressFlags: -faults (per side and round, default 5), -rounds (default 4), -no-faults,
// -cluster-clients, -timeline (see etcdtest.ProgressFlags). -short skips the benchmarks,
// as it does every test that starts a cluster.
var progressFlags = etcdtest.ProgressFlags(flag.CommandLine)

// BenchmarkProgressUnderFaults runs 3 candidates, one per member (each client reaches one
// member), whose leader writes a guarded read-modify-write to a ledger every 20ms, on a
// 3-node cluster under seeded schedules of faults — etcd leader stops, member
// partitions, client blackholes longer than the TTL, the last two on the member of the
// last leader to write, so that both sides face the same faults — with our
// Candidate.Run, and with etcd's concurrency.Election with each write guarded by a
// transaction on the leader key's create revision. Each round runs both sides on the
// same schedule, in turn (who goes first alternates); see etcdtest.RunProgress. It
// reports each side's writes committed, lost updates and stale writes (read back from the
// ledger's history), and the ratio of committed writes, ours over etcd's, summed over
// the rounds (each round's figures, and each fault's longest pause between writes, are
// logged). Run with -benchtime=1x.
func BenchmarkProgressUnderFaults(b *testing.B) {
	cfg := *progressFlags
	cfg.Writers, cfg.TTL, cfg.Seed = 3, progressTTL, 9
	etcdtest.BenchProgress(b, cfg,
		etcdtest.ProgressSide{Name: "ours", Run: oursCandidate},
		etcdtest.ProgressSide{Name: "etcd", Run: etcdCandidate})
}

// BenchmarkProgressSilentMember is BenchmarkProgressUnderFaults with one kind of fault, a
// member falling silent for 8 s while the other two serve, and clients that know every
// member, ours and etcd's alike: see the lock package's BenchmarkProgressSilentMember
// and etcdtest.Silent. The members fall silent in turn, each once in a round of 3
// faults, 2 rounds alternating which side goes first (about 3 minutes in all). Besides
// BenchmarkProgressUnderFaults' figures it reports each side's longest pause between
// committed writes after a fault, the mean over faults of the longest pause after each,
// and their ratios, ours over etcd's (gap-ratio, mean-gap-ratio: lower is better for
// ours; see etcdtest.ReportGaps). -faults, -rounds and -cluster-clients do not apply.
// Run with -benchtime=1x.
func BenchmarkProgressSilentMember(b *testing.B) {
	cfg := *progressFlags
	cfg.Writers, cfg.TTL, cfg.Seed = 3, progressTTL, 9
	cfg.Faults, cfg.Rounds, cfg.ClusterClients, cfg.Silent = 3, 2, true, silentFor
	etcdtest.BenchProgress(b, cfg,
		etcdtest.ProgressSide{Name: "ours", Run: oursCandidate},
		etcdtest.ProgressSide{Name: "etcd", Run: etcdCandidate})
}

func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func oursCandidate(ctx context.Context, w *etcdtest.ProgressWriter) {
	cand, err := election.New(w.Client, w.Prefix, w.ID, election.WithTTL(w.TTL), election.WithLogger(w.Logger()),
		election.OnElected(func(tok int64) { w.Add("elected %d", tok) }),
		election.OnDefeat(func(err error) { w.Add("defeat: %v", err) }))
	if err != nil {
		w.Error(err)
		return
	}
	defer cand.Close()
	_ = cand.Run(ctx, func(leaderCtx context.Context) error {
		for leaderCtx.Err() == nil {
			wctx, cancel := context.WithTimeout(leaderCtx, time.Second)
			_, _ = w.Write(wctx, cand.Token(), cand.LeaderCmp())
			cancel()
			pause(leaderCtx, progressPace)
		}
		return leaderCtx.Err()
	})
}

func etcdCandidate(ctx context.Context, w *etcdtest.ProgressWriter) {
	for ctx.Err() == nil {
		// The context bounds the grant and the keep-alives: it must outlive the session.
		s, err := concurrency.NewSession(w.Client, concurrency.WithTTL(int(w.TTL/time.Second)), concurrency.WithContext(ctx))
		if err != nil {
			w.Add("session FAIL: %v", err)
			pause(ctx, 50*time.Millisecond)
			continue
		}
		w.Add("session %x", int64(s.Lease()))
		ended, stop := context.WithCancel(ctx)
		go func() {
			select {
			case <-s.Done():
			case <-ended.Done():
			}
			stop()
		}()
		e := concurrency.NewElection(s, w.Prefix)
		for ended.Err() == nil {
			// etcd's Campaign does not notice its own session's end: bound it by it.
			if err := e.Campaign(ended, w.ID); err != nil {
				w.Add("campaign FAIL: %v", err)
				pause(ended, 50*time.Millisecond)
				continue
			}
			w.Add("elected %d", e.Rev())
			guard := clientv3.Compare(clientv3.CreateRevision(e.Key()), "=", e.Rev())
			for ended.Err() == nil {
				wctx, cancel := context.WithTimeout(ended, time.Second)
				ok, err := w.Write(wctx, e.Rev(), guard)
				cancel()
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
		w.Add("session ended")
		s.Orphan()
		rctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, _ = w.Client.Revoke(rctx, s.Lease())
		cancel()
	}
}
