package lock_test

import (
	"context"
	"errors"
	"flag"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/lock"
)

const (
	progressTTL     = 2 * time.Second
	progressWorkers = 5
	progressSeed    = 9
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

// BenchmarkProgressUnderFaults runs 5 workers that each lock, write a guarded
// read-modify-write to a ledger and unlock, on a 3-node cluster (each worker's client
// reaches one member) under a seeded schedule of faults — etcd leader stops, member
// partitions, client blackholes longer than the TTL, the last two on the member of the
// last holder to write, so that both sides face the same faults — first with our Mutex,
// then with etcd's concurrency.Mutex with each write guarded by a transaction on the
// key's create revision, under the same schedule. It reports each side's writes
// committed, lost updates and stale writes (read back from the ledger's history), and the
// ratio of committed writes, ours over etcd's. Run with -benchtime=1x.
func BenchmarkProgressUnderFaults(b *testing.B) {
	c := etcdtest.StartCluster(b, 3)
	var ours, theirs progress
	for b.Loop() {
		ours = runProgress(b, c, "ours", oursLockWorker)
		theirs = runProgress(b, c, "etcd", etcdLockWorker)
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

type lockWorker func(ctx context.Context, b *testing.B, cli *clientv3.Client, member int, key string, l *etcdtest.Ledger)

func runProgress(b *testing.B, c *etcdtest.Cluster, side string, worker lockWorker) progress {
	key := etcdtest.Prefix(b) + side
	admin := c.ClusterClient()
	setup, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	l, err := etcdtest.NewLedger(setup, admin, key+"-ledger")
	cancel()
	if err != nil {
		b.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := 0; w < progressWorkers; w++ {
		cli := c.Client(w % 3)
		if *clusterClients {
			cli = c.ClusterClient()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			worker(ctx, b, cli, w%3, key, l)
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
	start := time.Now()
	c.RunSchedule(ctx, progressFaults(), time.Second, func() int {
		if *clusterClients {
			return -1
		}
		return int(l.LastWriter())
	})
	p := progress{took: time.Since(start)}
	stop()
	wg.Wait()
	check, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p.committed, p.lost, p.stale, err = l.Check(check, admin)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("%s: %d writes in %v, %d lost, %d stale", side, p.committed, p.took.Round(time.Millisecond), p.lost, p.stale)
	return p
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

func oursLockWorker(ctx context.Context, b *testing.B, cli *clientv3.Client, member int, key string, l *etcdtest.Ledger) {
	m, err := lock.New(cli, key, lock.WithTTL(progressTTL))
	if err != nil {
		b.Error(err)
		return
	}
	defer m.Close()
	for ctx.Err() == nil {
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := m.Lock(lctx)
		cancel()
		if err != nil {
			pause(ctx, 50*time.Millisecond)
			continue
		}
		wctx, cancel := context.WithTimeout(ctx, time.Second)
		_, _ = l.Write(wctx, cli, member, m.Token(), m.OwnerCmp())
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

func etcdLockWorker(ctx context.Context, b *testing.B, cli *clientv3.Client, member int, key string, l *etcdtest.Ledger) {
	for ctx.Err() == nil {
		s, ended, err := etcdSession(ctx, cli)
		if err != nil {
			pause(ctx, 50*time.Millisecond)
			continue
		}
		m := concurrency.NewMutex(s, key)
		for ended.Err() == nil {
			// etcd's Lock does not notice its own session's end: bound the wait by it.
			lctx, cancel := context.WithTimeout(ended, 5*time.Second)
			err := m.Lock(lctx)
			cancel()
			if err != nil {
				pause(ended, 50*time.Millisecond)
				continue
			}
			wctx, cancel := context.WithTimeout(ctx, time.Second)
			// IsOwner compares the key's create revision; the header's revision at
			// acquisition strictly increases from one holder to the next: a token.
			guard := m.IsOwner()
			_, _ = l.Write(wctx, cli, member, m.Header().Revision, guard)
			cancel()
			uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			_ = m.Unlock(uctx)
			cancel()
		}
		closeEtcdSession(s)
	}
}

// etcdSession starts a session of progressTTL and returns a context that ends with it
// (its lease lost or revoked) or with ctx.
func etcdSession(ctx context.Context, cli *clientv3.Client) (*concurrency.Session, context.Context, error) {
	// The context bounds the grant and the keep-alives: it must outlive the session.
	s, err := concurrency.NewSession(cli, concurrency.WithTTL(int(progressTTL/time.Second)), concurrency.WithContext(ctx))
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
