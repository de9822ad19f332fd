package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/store"
	"github.com/etcd-monitor/etcd-monitor/store/postgres"
)

// Two holders on two stores (two daemons): one holds at a time; the other takes over
// after expiry with a larger token; the deposed holder cannot renew and its fenced
// writes are refused, while the new holder's go through.
func TestLeaseTwoHoldersExpiryAndFencing(t *testing.T) {
	sch := schema(t)
	s1, s2 := open(t, sch), open(t, sch)
	ctx := ctxT(t)
	const ttl = 2 * time.Second
	a, err := s1.NewLease("alerting", "a", ttl)
	require.NoError(t, err)
	b, err := s2.NewLease("alerting", "b", ttl)
	require.NoError(t, err)

	ok, err := a.Acquire(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	held, tokA := a.Held()
	require.True(t, held)
	ok, err = b.Acquire(ctx)
	require.NoError(t, err)
	assert.False(t, ok, "a holds it")
	held, _ = b.Held()
	assert.False(t, held)
	_, err = b.Fenced()
	assert.ErrorIs(t, err, postgres.ErrLeaseLost)

	fa, err := a.Fenced()
	require.NoError(t, err)
	require.NoError(t, fa.PutAlerts(ctx, []store.Alert{{Fingerprint: "x", State: "firing", ActiveAt: time.Now()}}, nil))
	require.NoError(t, a.Renew(ctx))
	ok, err = a.Acquire(ctx)
	require.NoError(t, err)
	require.True(t, ok, "re-acquiring renews")
	_, tok := a.Held()
	assert.Equal(t, tokA, tok, "same term")
	info, err := b.Info(ctx)
	require.NoError(t, err)
	assert.Equal(t, "a", info.Holder)
	assert.False(t, info.Expired)

	// a stops renewing: b takes over once the lease expired by PostgreSQL's clock.
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		ok, err := b.Acquire(ctx)
		assert.NoError(c, err)
		assert.True(c, ok)
	}, 3*ttl, 50*time.Millisecond)
	_, tokB := b.Held()
	assert.Greater(t, tokB, tokA)
	assert.False(t, a.Deadline().After(time.Now()), "a's own view ended by now")

	// The deposed holder: no renewal, fenced writes refused, nothing written.
	assert.ErrorIs(t, a.Renew(ctx), postgres.ErrLeaseLost)
	err = fa.PutAlerts(ctx, []store.Alert{{Fingerprint: "stale", State: "firing", ActiveAt: time.Now()}}, nil)
	assert.ErrorIs(t, err, postgres.ErrFenced)
	assert.ErrorIs(t, fa.PutGroup(ctx, store.Group{Receiver: "r", GroupKey: "k", SentAt: time.Now()}), postgres.ErrFenced)
	assert.ErrorIs(t, fa.DeleteGroup(ctx, "r", "k"), postgres.ErrFenced)
	_, err = fa.AppendNotification(ctx, store.Notification{Receiver: "r", Status: "sent"})
	assert.ErrorIs(t, err, postgres.ErrFenced)
	alerts, err := s1.Alerts(ctx)
	require.NoError(t, err)
	require.Len(t, alerts, 1)
	assert.Equal(t, "x", alerts[0].Fingerprint)
	assert.Zero(t, s1.Stats().Errors, "a fenced write is not a store error")

	fb, err := b.Fenced()
	require.NoError(t, err)
	assert.Equal(t, tokB, fb.Token())
	n, err := fb.AppendNotification(ctx, store.Notification{Receiver: "r", Status: "sent"})
	require.NoError(t, err)
	assert.NotZero(t, n.ID)
	require.NoError(t, fb.Close(), "the view's Close leaves the store open")
	_, err = s2.Alerts(ctx)
	require.NoError(t, err)

	// a cannot take it back while b holds it; after b releases, a can at once.
	ok, err = a.Acquire(ctx)
	require.NoError(t, err)
	assert.False(t, ok)
	require.NoError(t, b.Release(ctx))
	require.NoError(t, b.Release(ctx), "releasing twice")
	_, err = fb.AppendNotification(ctx, store.Notification{Receiver: "r", Status: "sent"})
	assert.ErrorIs(t, err, postgres.ErrFenced, "a released term is over")
	ok, err = a.Acquire(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	_, tokA2 := a.Held()
	assert.Greater(t, tokA2, tokB)
}

// A fenced write in progress holds off a takeover: the new holder reads it.
func TestLeaseTakeoverWaitsForFencedWrite(t *testing.T) {
	sch := schema(t)
	s1, s2 := open(t, sch), open(t, sch)
	ctx := ctxT(t)
	a, err := s1.NewLease("l", "a", time.Second)
	require.NoError(t, err)
	b, err := s2.NewLease("l", "b", time.Second)
	require.NoError(t, err)
	ok, err := a.Acquire(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	fa, err := a.Fenced()
	require.NoError(t, err)
	// Many small fenced writes by a, racing b's attempts; once b holds the lease every
	// later write of a fails, and every write that succeeded is visible to b.
	done := make(chan int)
	go func() {
		n := 0
		for stop := time.Now().Add(20 * time.Second); time.Now().Before(stop); n++ {
			if _, err := fa.AppendNotification(context.Background(), store.Notification{Receiver: "a", Attempt: n, Status: "sent"}); err != nil {
				assert.ErrorIs(t, err, postgres.ErrFenced)
				break
			}
		}
		done <- n
	}()
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		ok, err := b.Acquire(ctx)
		assert.NoError(c, err)
		assert.True(c, ok)
	}, 3*time.Second, 20*time.Millisecond)
	n := <-done
	ns, err := s2.Notifications(ctx, store.NotificationQuery{Receiver: "a", Limit: 5000})
	require.NoError(t, err)
	assert.Len(t, ns, n, "every write a was told succeeded is there")
	_, err = fa.AppendNotification(ctx, store.Notification{Receiver: "a", Status: "sent"})
	assert.ErrorIs(t, err, postgres.ErrFenced, "a was fenced off")
}

func TestLeaseArguments(t *testing.T) {
	s := open(t, schema(t))
	_, err := s.NewLease("", "a", time.Second)
	assert.ErrorIs(t, err, postgres.ErrInvalidArgument)
	_, err = s.NewLease("l", "", time.Second)
	assert.ErrorIs(t, err, postgres.ErrInvalidArgument)
	_, err = s.NewLease("l", "a", time.Millisecond)
	assert.ErrorIs(t, err, postgres.ErrInvalidArgument)
	l, err := s.NewLease("l", "a", time.Second)
	require.NoError(t, err)
	_, err = l.Info(ctxT(t))
	assert.ErrorIs(t, err, store.ErrNotFound)
	assert.ErrorIs(t, l.Renew(ctxT(t)), postgres.ErrLeaseLost)
}

// The fence check of a write holds the lease row: a takeover waits until that write
// commits, so the new holder reads it.
func TestFencedWriteHoldsOffTakeover(t *testing.T) {
	ctx := ctxT(t)
	b, tx := fencedWriteInFlight(t)

	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		info, err := b.Info(ctx)
		assert.NoError(c, err)
		assert.True(c, info.Expired)
	}, 3*time.Second, 20*time.Millisecond)
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	ok, err := b.Acquire(short)
	assert.False(t, ok)
	assert.ErrorIs(t, err, context.DeadlineExceeded, "the takeover waits for the write in flight")

	require.NoError(t, tx.Commit(ctx))
	ok, err = b.Acquire(ctx)
	require.NoError(t, err)
	assert.True(t, ok)
}

// A holder whose own view of its term ended while PostgreSQL still has it (a renewal
// applied whose answer was lost) starts a new term with a larger token when it
// acquires again, and the ended term's fenced writes are refused.
func TestLeaseNewTermAfterOwnViewEnded(t *testing.T) {
	s := open(t, schema(t))
	ctx := ctxT(t)
	const ttl = time.Second
	a, err := s.NewLease("l", "a", ttl)
	require.NoError(t, err)
	ok, err := a.Acquire(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	_, tok := a.Held()
	old, err := a.Fenced()
	require.NoError(t, err)
	// The renewal PostgreSQL applied but whose answer a never got.
	_, err = s.Pool().Exec(ctx, `UPDATE leases SET expires = clock_timestamp() + interval '1 hour' WHERE name = 'l'`)
	require.NoError(t, err)
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		held, _ := a.Held()
		assert.False(c, held)
	}, 3*ttl, 10*time.Millisecond)
	ok, err = a.Acquire(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	_, tok2 := a.Held()
	assert.Greater(t, tok2, tok, "a new term")
	_, err = old.AppendNotification(ctx, store.Notification{Time: time.Now(), Receiver: "r", Status: "sent"})
	assert.ErrorIs(t, err, postgres.ErrFenced)
}

// Silence writes of a term's engine are fenced too: a deposed holder's are refused.
func TestFencedSilences(t *testing.T) {
	s := open(t, schema(t))
	ctx := ctxT(t)
	a, err := s.NewLease("l", "a", time.Second)
	require.NoError(t, err)
	ok, err := a.Acquire(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	f, err := a.Fenced()
	require.NoError(t, err)
	require.NoError(t, f.PutSilence(ctx, store.Silence{ID: "s1"}))
	require.NoError(t, f.DeleteSilence(ctx, "s1"))
	require.NoError(t, f.PutSilence(ctx, store.Silence{ID: "s2"}))
	_, err = s.Pool().Exec(ctx, `UPDATE leases SET holder = 'b', token = token + 1 WHERE name = 'l'`)
	require.NoError(t, err)
	assert.ErrorIs(t, f.PutSilence(ctx, store.Silence{ID: "s3"}), postgres.ErrFenced)
	assert.ErrorIs(t, f.DeleteSilence(ctx, "s2"), postgres.ErrFenced)
	sils, err := s.Silences(ctx)
	require.NoError(t, err)
	require.Len(t, sils, 1)
	assert.Equal(t, "s2", sils[0].ID)
}

// The alert history is written with the alert state, fenced alike: an ended term's
// engine adds no transition.
func TestFencedAlertHistory(t *testing.T) {
	s := open(t, schema(t))
	ctx := ctxT(t)
	a, err := s.NewLease("l", "a", time.Second)
	require.NoError(t, err)
	ok, err := a.Acquire(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	f, err := a.Fenced()
	require.NoError(t, err)
	now := time.Now()
	require.NoError(t, f.PutAlerts(ctx, []store.Alert{{Fingerprint: "x", State: "firing", ActiveAt: now, FiredAt: now}}, nil))
	_, err = s.Pool().Exec(ctx, `UPDATE leases SET holder = 'b', token = token + 1 WHERE name = 'l'`)
	require.NoError(t, err)
	assert.ErrorIs(t, f.PutAlerts(ctx, nil, []string{"x"}), postgres.ErrFenced)
	assert.ErrorIs(t, f.PutAlerts(ctx, []store.Alert{{Fingerprint: "y", State: "firing", ActiveAt: now, FiredAt: now}}, nil), postgres.ErrFenced)
	h, err := f.AlertHistory(ctx, store.AlertHistoryQuery{})
	require.NoError(t, err)
	require.Len(t, h, 1)
	assert.Equal(t, "x", h[0].Fingerprint)
	assert.Equal(t, "firing", h[0].State)
}

// A holder that stalls inside a fenced write (a frozen process, a cut network) holds
// off a takeover only until PostgreSQL ends its idle transaction, after the store's
// operation timeout: then the standby takes the lease and the stalled write is lost.
func TestStalledFencedWriteReleasedAfterOpTimeout(t *testing.T) {
	ctx := ctxT(t)
	b, tx := fencedWriteInFlight(t, postgres.WithOpTimeout(time.Second))
	// The stall: a's transaction holds the lease row and sends nothing more.

	// The lease expires after 1 s and the session ends 1 s after its last statement;
	// wait three times that.
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		ok, err := b.Acquire(short)
		assert.NoError(c, err)
		assert.True(c, ok)
	}, 6*time.Second, 50*time.Millisecond, "the standby takes the lease once the stalled session is ended")
	assert.Error(t, tx.Commit(ctx), "the stalled write does not land")
}

// fencedWriteInFlight has holder a (on a store opened with opts) take lease "l" of a
// 1 s TTL and begin a fenced write, its fence checked and not committed; it returns the
// other holder, b, on a store of its own, and the write's transaction.
func fencedWriteInFlight(t *testing.T, opts ...postgres.Option) (*postgres.Lease, pgx.Tx) {
	t.Helper()
	sch := schema(t)
	s1, s2 := open(t, sch, opts...), open(t, sch)
	ctx := ctxT(t)
	a, err := s1.NewLease("l", "a", time.Second)
	require.NoError(t, err)
	b, err := s2.NewLease("l", "b", time.Second)
	require.NoError(t, err)
	ok, err := a.Acquire(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	fa, err := a.Fenced()
	require.NoError(t, err)
	tx, err := s1.Pool().Begin(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { tx.Rollback(context.Background()) })
	require.NoError(t, postgres.FenceCheck(ctx, fa, tx))
	return b, tx
}
