package alert_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/alert"
	"github.com/etcd-monitor/etcd-monitor/store"
)

// countingStore counts the alerts each PutAlerts writes; it fails the next fail calls.
type countingStore struct {
	store.Store
	mu     sync.Mutex
	writes int
	fail   int
}

func (c *countingStore) PutAlerts(ctx context.Context, puts []store.Alert, del []string) error {
	c.mu.Lock()
	if c.fail > 0 {
		c.fail--
		c.mu.Unlock()
		return errors.New("database on fire")
	}
	c.writes += len(puts)
	c.mu.Unlock()
	return c.Store.PutAlerts(ctx, puts, del)
}

func (c *countingStore) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writes
}

// An alert that stays firing is written when it starts and then once a minute, not at
// every evaluation; what the store holds stays fresh to within that minute.
func TestFiringAlertWrittenOncePerMinute(t *testing.T) {
	st := &countingStore{Store: store.NewMemory()}
	m, err := alert.New(alert.WithStore(st), alert.WithReceiver("pager", &sink{}, true),
		alert.WithRules(rulesNamed(t, alert.DefaultThresholds(), "EtcdInsufficientMembers")...))
	require.NoError(t, err)
	defer m.Close()
	ctx := context.Background()

	eval := func(at time.Duration) {
		t.Helper()
		_, err := m.EvaluateCluster(ctx, "prod", three(t0.Add(at), 2, 3), nil)
		require.NoError(t, err)
	}
	eval(0)
	require.Equal(t, alert.Firing, stateOf(m, "EtcdInsufficientMembers", ""))
	assert.Equal(t, 1, st.count(), "written when it fires")
	for at := 10 * time.Second; at < time.Minute; at += 10 * time.Second {
		eval(at)
	}
	assert.Equal(t, 1, st.count(), "nothing changed but its value: not written again within the minute")
	eval(time.Minute)
	assert.Equal(t, 2, st.count(), "written again once its last-true time is a minute ahead of the store's")

	stored, err := st.Alerts(ctx)
	require.NoError(t, err)
	require.Len(t, stored, 1)
	var rec struct {
		LastTrue time.Time `json:"lastTrue"`
	}
	require.NoError(t, json.Unmarshal(stored[0].Data, &rec))
	assert.True(t, rec.LastTrue.Equal(t0.Add(time.Minute)), "the store has the latest last-true time: %v", rec.LastTrue)

	eval(time.Minute + 10*time.Second) // recovered: resolved, written
	_, err = m.EvaluateCluster(ctx, "prod", three(t0.Add(time.Minute+20*time.Second)), nil)
	require.NoError(t, err)
	assert.Equal(t, 3, st.count(), "the resolve is written")
}

// A rule with KeepFiringFor times its resolve from the last time it was true, so its
// alerts are written at every evaluation: a restart or failover resolves them no earlier.
func TestKeepFiringForAlertWrittenEveryEvaluation(t *testing.T) {
	rules := rulesNamed(t, alert.DefaultThresholds(), "EtcdInsufficientMembers")
	rules[0].KeepFiringFor = 5 * time.Minute
	st := &countingStore{Store: store.NewMemory()}
	m, err := alert.New(alert.WithStore(st), alert.WithReceiver("pager", &sink{}, true), alert.WithRules(rules...))
	require.NoError(t, err)
	defer m.Close()
	for i := range 4 {
		_, err := m.EvaluateCluster(context.Background(), "prod", three(t0.Add(time.Duration(i)*10*time.Second), 2, 3), nil)
		require.NoError(t, err)
	}
	assert.Equal(t, 4, st.count())
}

// A state change whose write failed is written at the next evaluation, not a minute
// later: the store never says pending for long while the alert fires.
func TestFailedAlertWriteRetriedAtNextEvaluation(t *testing.T) {
	rules := rulesNamed(t, alert.DefaultThresholds(), "EtcdInsufficientMembers")
	rules[0].For = 30 * time.Second
	st := &countingStore{Store: store.NewMemory()}
	m, err := alert.New(alert.WithStore(st), alert.WithReceiver("pager", &sink{}, true), alert.WithRules(rules...))
	require.NoError(t, err)
	defer m.Close()
	ctx := context.Background()
	eval := func(at time.Duration) error {
		_, err := m.EvaluateCluster(ctx, "prod", three(t0.Add(at), 2, 3), nil)
		return err
	}
	require.NoError(t, eval(0)) // pending, written
	st.mu.Lock()
	st.fail = 1
	st.mu.Unlock()
	require.Error(t, eval(30*time.Second), "firing: its write fails")
	require.NoError(t, eval(40*time.Second))
	stored, err := st.Alerts(ctx)
	require.NoError(t, err)
	require.Len(t, stored, 1)
	assert.Equal(t, string(alert.Firing), stored[0].State, "written again at the next evaluation")
}
