package alert_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/alert"
	"github.com/etcd-monitor/etcd-monitor/store"
)

// daemon is one run of a Manager over a bbolt state file.
func daemon(t *testing.T, path string, rec alert.Sender, opts ...alert.Option) (*alert.Manager, *store.Bolt) {
	t.Helper()
	st, err := store.Open(path)
	require.NoError(t, err)
	m, err := alert.New(append([]alert.Option{alert.WithStore(st), alert.WithReceiver("pager", rec, true),
		alert.WithRules(rulesNamed(t, alert.DefaultThresholds(), "EtcdInsufficientMembers", "EtcdMembersDown")...)}, opts...)...)
	require.NoError(t, err)
	return m, st
}

func stop(t *testing.T, m *alert.Manager, st *store.Bolt) {
	t.Helper()
	require.NoError(t, m.Close())
	require.NoError(t, st.Close())
}

// Restarting the daemon mid-incident re-sends nothing before repeat_interval; a
// condition that cleared while it was down gets its resolve sent after the restart.
func TestRestartNoDuplicateAndResolveAfterRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	rec := &sink{}
	ctx := context.Background()

	m, st := daemon(t, path, rec)
	_, err := m.EvaluateCluster(ctx, "prod", three(t0, 2, 3), nil)
	require.NoError(t, err)
	require.NoError(t, m.Flush(ctx))
	require.Equal(t, []string{"firing EtcdInsufficientMembers::firing"}, rec.summary())
	stop(t, m, st)

	// Restart mid-incident: still firing.
	m, st = daemon(t, path, rec)
	assert.Equal(t, alert.Firing, stateOf(m, "EtcdInsufficientMembers", ""), "restored from the store")
	assert.Equal(t, alert.Pending, stateOf(m, "EtcdMembersDown", "m2"), "pending keeps its start")
	for i := range 5 {
		_, err = m.EvaluateCluster(ctx, "prod", three(t0.Add(time.Duration(i+1)*time.Minute), 2, 3), nil)
		require.NoError(t, err)
		require.NoError(t, m.Flush(ctx))
	}
	assert.Len(t, rec.summary(), 1, "no duplicate after a restart")
	assert.Equal(t, alert.Firing, stateOf(m, "EtcdMembersDown", "m2"), "for counted from before the restart (3m)")
	stop(t, m, st)

	// The cluster recovers while the daemon is down; after the restart the resolve goes out.
	m, st = daemon(t, path, rec)
	_, err = m.EvaluateCluster(ctx, "prod", three(t0.Add(10*time.Minute)), nil)
	require.NoError(t, err)
	require.NoError(t, m.Flush(ctx))
	assert.Equal(t, []string{"firing EtcdInsufficientMembers::firing", "resolved EtcdInsufficientMembers::resolved"}, rec.summary())
	stop(t, m, st)
}

// Close flushes queued notifications — a group still in group_wait included — within
// the shutdown timeout.
func TestCloseFlushesQueued(t *testing.T) {
	rec := &sink{}
	m, err := alert.New(alert.WithReceiver("pager", rec, true), alert.WithShutdownTimeout(5*time.Second),
		alert.WithRules(rulesNamed(t, alert.DefaultThresholds(), "EtcdInsufficientMembers")...))
	require.NoError(t, err)
	_, err = m.EvaluateCluster(context.Background(), "prod", three(time.Now(), 2, 3), nil)
	require.NoError(t, err)
	assert.Empty(t, rec.summary(), "group_wait (10s) has not passed")
	require.NoError(t, m.Close())
	assert.Equal(t, []string{"firing EtcdInsufficientMembers::firing"}, rec.summary())
	_, err = m.EvaluateCluster(context.Background(), "prod", three(t0), nil)
	assert.ErrorIs(t, err, alert.ErrClosed)
	assert.ErrorIs(t, m.Flush(context.Background()), alert.ErrClosed, "does not wait for receivers that are gone")
	require.NoError(t, m.Close(), "idempotent")
}

// A resolve that could not be delivered before shutdown is kept in the store and sent
// after the restart.
func TestUndeliveredResolveSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	ctx := context.Background()
	var down atomic.Bool
	rec := &sink{fail: func(alert.Notification) error {
		if down.Load() {
			return errors.New("receiver unreachable")
		}
		return nil
	}}
	m, st := daemon(t, path, rec, alert.WithShutdownTimeout(100*time.Millisecond),
		alert.WithRetry(alert.Retry{Attempts: 100, MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond}))
	_, err := m.EvaluateCluster(ctx, "prod", three(t0, 2, 3), nil)
	require.NoError(t, err)
	require.NoError(t, m.Flush(ctx))
	down.Store(true)
	_, err = m.EvaluateCluster(ctx, "prod", three(t0.Add(time.Minute)), nil)
	require.NoError(t, err)
	stop(t, m, st) // the resolve cannot be delivered within the timeout
	recs := rec.summary()
	require.Equal(t, []string{"firing EtcdInsufficientMembers::firing"}, recs)

	down.Store(false)
	m, st = daemon(t, path, rec)
	require.NoError(t, m.Flush(ctx))
	assert.Equal(t, []string{"firing EtcdInsufficientMembers::firing", "resolved EtcdInsufficientMembers::resolved"}, rec.summary())
	stop(t, m, st)
}

// A state file that is not one is a clear error naming the file, and is left as it was.
func TestCorruptStateFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	require.NoError(t, writeFile(path, []byte("not a database, but someone's notes")))
	_, err := store.Open(path)
	require.Error(t, err)
	assert.ErrorIs(t, err, store.ErrCorrupt)
	assert.Contains(t, err.Error(), path)
	b, _ := readFile(path)
	assert.Equal(t, "not a database, but someone's notes", string(b))
}

// An alert restored from the store whose rule is gone (or disabled) after a
// configuration change resolves at the cluster's next evaluation.
func TestRestoredAlertOfRemovedRuleResolves(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	rec := &sink{}
	ctx := context.Background()
	m, st := daemon(t, path, rec)
	_, err := m.EvaluateCluster(ctx, "prod", three(t0, 2, 3), nil)
	require.NoError(t, err)
	require.NoError(t, m.Flush(ctx))
	stop(t, m, st)

	st, err = store.Open(path)
	require.NoError(t, err)
	m, err = alert.New(alert.WithStore(st), alert.WithReceiver("pager", rec, true),
		alert.WithConfig(alert.Config{Rules: map[string]alert.RuleOverride{"EtcdInsufficientMembers": {Disabled: true}}}))
	require.NoError(t, err)
	_, err = m.EvaluateCluster(ctx, "prod", three(t0.Add(time.Minute), 2, 3), nil)
	require.NoError(t, err)
	require.NoError(t, m.Flush(ctx))
	assert.Equal(t, none, stateOf(m, "EtcdInsufficientMembers", ""))
	assert.Equal(t, []string{"firing EtcdInsufficientMembers::firing", "resolved EtcdInsufficientMembers::resolved"}, rec.summary())
	stop(t, m, st)
}

// Silences survive a restart; those expired for longer than the retention are dropped.
func TestSilencesPersistAndExpire(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	ctx := context.Background()
	st, err := store.Open(path)
	require.NoError(t, err)
	old := time.Now().Add(-alert.SilenceRetention - time.Hour)
	require.NoError(t, st.PutSilence(ctx, store.Silence{ID: "old", Matchers: []store.Matcher{{Name: "a", Value: "b", IsEqual: true}},
		StartsAt: old.Add(-time.Hour), EndsAt: old, CreatedBy: "x", Comment: "x"}))
	m, err := alert.New(alert.WithStore(st))
	require.NoError(t, err)
	s, err := m.CreateSilence(ctx, alert.Silence{Matchers: alert.MustParseMatchers(`cluster="prod"`), EndsAt: time.Now().Add(time.Hour),
		CreatedBy: "me", Comment: "upgrade"})
	require.NoError(t, err)
	require.NoError(t, m.Close())
	require.NoError(t, st.Close())

	st, err = store.Open(path)
	require.NoError(t, err)
	m, err = alert.New(alert.WithStore(st))
	require.NoError(t, err)
	list, err := m.Silences(ctx)
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, s.ID, list[0].ID)
	assert.Equal(t, `cluster="prod"`, list[0].Matchers[0].String())
	assert.Equal(t, alert.SilenceActive, list[0].Status.State)
	require.NoError(t, m.Close())
	require.NoError(t, st.Close())
}
