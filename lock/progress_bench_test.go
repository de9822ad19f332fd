package lock_test

import (
	"context"
	"errors"
	"flag"
	"testing"
	"time"

	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/lock"
)

const (
	progressTTL = 2 * time.Second
	// silentFor is how long a member is silent in BenchmarkProgressSilentMember.
	silentFor = 8 * time.Second
)

// progressFlags: -faults (per side and round, default 5), -rounds (default 4), -no-faults,
// -cluster-clients, -timeline (see etcdtest.ProgressFlags). -short skips the benchmarks,
// as it does every test that starts a cluster.
var progressFlags = etcdtest.ProgressFlags(flag.CommandLine)

// BenchmarkProgressUnderFaults runs 5 workers that each lock, write a guarded
// read-modify-write to a ledger and unlock, on a 3-node cluster (each worker's client
// reaches one member) under seeded schedules of faults — etcd leader stops, member
// partitions, client blackholes longer than the TTL, the last two on the member of the
// last holder to write, so that both sides face the same faults — with our Mutex, and
// with etcd's concurrency.Mutex with each write guarded by a transaction on the key's
// create revision. Each round runs both sides on the same schedule, in turn (who goes
// first alternates); see etcdtest.RunProgress. It reports each side's writes committed,
// lost updates and stale writes (read back from the ledger's history), and the ratio of
// committed writes, ours over etcd's, summed over the rounds (each round's figures, and
// each fault's longest pause between writes, are logged). Run with -benchtime=1x.
func BenchmarkProgressUnderFaults(b *testing.B) {
	cfg := *progressFlags
	cfg.Writers, cfg.TTL, cfg.Seed = 5, progressTTL, 9
	etcdtest.BenchProgress(b, cfg,
		etcdtest.ProgressSide{Name: "ours", Run: oursLockWorker},
		etcdtest.ProgressSide{Name: "etcd", Run: etcdLockWorker})
}

// BenchmarkProgressSilentMember is BenchmarkProgressUnderFaults with one kind of fault, a
// member falling silent for 8 s while the other two serve, and clients that know every
// member, ours and etcd's alike. A silent member is the integration cluster's Blackhole
// with a partition (etcdtest.Silent): its bridge keeps every client connection open,
// accepts new ones and swallows whatever passes either way, and its peers stop hearing
// from it, as with a stopped process or a frozen machine; when it answers again its
// client connections are closed, and clients reconnect. The members fall silent in
// turn, each once in a round of 3 faults, with etcd's leader placed on the silent member
// or elsewhere as the seed draws, the same for both sides; 2 rounds alternate which side
// goes first (about 3 minutes in all). Besides BenchmarkProgressUnderFaults' figures it
// reports each side's longest pause between committed writes after a fault, the mean
// over faults of the longest pause after each, and their ratios, ours over etcd's
// (gap-ratio, mean-gap-ratio: lower is better for ours; see etcdtest.ReportGaps), and
// the same for the pauses between acquisitions (acq-gap-ratio, mean-acq-gap-ratio). The
// ledger's read and guarded write go through the worker's client, not hedged, so more
// than half of the writes a holder makes while a member is silent send one of them to
// it and time out after a second, whichever lock it holds: the pauses between writes
// wait on that luck too, the pauses between acquisitions on the lock alone. -faults, -rounds and -cluster-clients
// do not apply. Run with -benchtime=1x.
func BenchmarkProgressSilentMember(b *testing.B) {
	cfg := *progressFlags
	cfg.Writers, cfg.TTL, cfg.Seed = 5, progressTTL, 9
	cfg.Faults, cfg.Rounds, cfg.ClusterClients, cfg.Silent = 3, 2, true, silentFor
	etcdtest.BenchProgress(b, cfg,
		etcdtest.ProgressSide{Name: "ours", Run: oursLockWorker},
		etcdtest.ProgressSide{Name: "etcd", Run: etcdLockWorker})
}

// pause waits d or until ctx ends.
func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func oursLockWorker(ctx context.Context, w *etcdtest.ProgressWriter) {
	m, err := lock.New(w.Client, w.Prefix, lock.WithTTL(w.TTL), lock.WithLogger(w.Logger()))
	if err != nil {
		w.Error(err)
		return
	}
	defer m.Close()
	for ctx.Err() == nil {
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := m.Lock(lctx)
		cancel()
		if err != nil {
			w.Add("lock FAIL: %v", err)
			pause(ctx, 50*time.Millisecond)
			continue
		}
		w.Acquired(m.Token())
		wctx, cancel := context.WithTimeout(ctx, time.Second)
		_, _ = w.Write(wctx, m.Token(), m.OwnerCmp())
		cancel()
		unlock(ctx, m)
	}
}

// unlock retries a failed Unlock, as a careful caller does, until it is done or the
// lock is no longer held.
func unlock(ctx context.Context, m *lock.Mutex) {
	for {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		err := m.Unlock(uctx)
		cancel()
		if err == nil || errors.Is(err, lock.ErrNotHeld) || errors.Is(err, lock.ErrClosed) {
			return
		}
		pause(context.Background(), 50*time.Millisecond)
	}
}

func etcdLockWorker(ctx context.Context, w *etcdtest.ProgressWriter) {
	for ctx.Err() == nil {
		s, ended, err := etcdSession(ctx, w)
		if err != nil {
			w.Add("session FAIL: %v", err)
			pause(ctx, 50*time.Millisecond)
			continue
		}
		m := concurrency.NewMutex(s, w.Prefix)
		for ended.Err() == nil {
			// etcd's Lock does not notice its own session's end: bound the wait by it.
			lctx, cancel := context.WithTimeout(ended, 5*time.Second)
			err := m.Lock(lctx)
			cancel()
			if err != nil {
				w.Add("lock FAIL: %v", err)
				pause(ended, 50*time.Millisecond)
				continue
			}
			// IsOwner compares the key's create revision; the header's revision at
			// acquisition strictly increases from one holder to the next: a token.
			w.Acquired(m.Header().Revision)
			wctx, cancel := context.WithTimeout(ctx, time.Second)
			_, _ = w.Write(wctx, m.Header().Revision, m.IsOwner())
			cancel()
			uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			_ = m.Unlock(uctx)
			cancel()
		}
		w.Add("session ended")
		closeEtcdSession(s)
	}
}

// etcdSession starts a session of the writer's TTL and returns a context that ends with
// it (its lease lost or revoked) or with ctx.
func etcdSession(ctx context.Context, w *etcdtest.ProgressWriter) (*concurrency.Session, context.Context, error) {
	// The context bounds the grant and the keep-alives: it must outlive the session.
	s, err := concurrency.NewSession(w.Client, concurrency.WithTTL(int(w.TTL/time.Second)), concurrency.WithContext(ctx))
	if err != nil {
		return nil, nil, err
	}
	ended, stop := context.WithCancel(ctx)
	go func() {
		select {
		case <-s.Done():
		case <-ended.Done():
		}
		stop()
	}()
	return s, ended, nil
}

// closeEtcdSession stops renewing s and revokes its lease, waiting at most a second.
func closeEtcdSession(s *concurrency.Session) {
	s.Orphan()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, _ = s.Client().Revoke(ctx, s.Lease())
}
