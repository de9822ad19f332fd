package monitor_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/alert"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/internal/pgtest"
	"github.com/etcd-monitor/etcd-monitor/monitor"
	"github.com/etcd-monitor/etcd-monitor/store/postgres"
)

// pgReplicaStore opens a PostgreSQL store in a schema of the test's own (dropped when
// it ends), as one replica would; call it again with the same schema for another.
func pgReplicaStore(t *testing.T, schema string) *postgres.Store {
	t.Helper()
	st, err := postgres.Open(context.Background(), pgtest.URL(t), postgres.WithSchema(schema))
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	return st
}

func pgReplicaSchema(t *testing.T) string {
	t.Helper()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := "t_monitor_replica_" + hex.EncodeToString(b)
	u := pgtest.URL(t)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, u)
		if err != nil {
			t.Logf("drop schema %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+name+" CASCADE"); err != nil {
			t.Logf("drop schema %s: %v", name, err)
		}
	})
	return name
}

// transitions are the (name, cluster, state, time) of an alert history, for comparing
// two replicas' answers.
type transitionView struct {
	Name, Cluster string
	State         alert.State
	At            time.Time
}

func transitionsOf(as []monitor.ClusterAlert) []transitionView {
	out := []transitionView{}
	for _, a := range as {
		at := a.StartsAt
		if a.State == alert.Resolved {
			at = a.EndsAt
		}
		out = append(out, transitionView{a.Name, a.Cluster, a.State, at.UTC()})
	}
	return out
}

// Two replicas on one PostgreSQL store: the active one evaluates and notifies, the
// standby never does; yet both answer /api/v1/alerts and /api/v1/alerts/history
// alike, from the store, and so does a replica started afresh after the incident (a
// restart).
func TestStoreReplicasAnswerAlertsAlike(t *testing.T) {
	schema := pgReplicaSchema(t)
	stA, stB := pgReplicaStore(t, schema), pgReplicaStore(t, schema)
	cli := etcdtest.Client(t)
	sw := &switches{}
	// Only the test's rules: a built-in one (slow probes on a loaded machine) would
	// add alerts of its own.
	replica := func(st *postgres.Store, rec *recorder) (*monitor.Service, string) {
		return service(t, []monitor.Cluster{{Name: "main", Client: cli}}, monitor.WithStore(st), monitor.WithStandby(),
			monitor.WithHealthInterval(50*time.Millisecond), monitor.WithMetricsInterval(time.Hour),
			monitor.WithAlertOptions(alert.WithRules(sw.rules()...), alert.WithReceiver("rec", rec, true),
				alert.WithConfig(alert.Config{Route: &alert.Route{Receiver: "rec", GroupWait: 20 * time.Millisecond,
					GroupInterval: 50 * time.Millisecond, RepeatInterval: time.Hour}})))
	}
	recA, recB := &recorder{}, &recorder{}
	a, urlA := replica(stA, recA)
	_, urlB := replica(stB, recB)
	const wait = 15 * time.Second

	ctxA, endA := context.WithCancel(context.Background())
	doneA := make(chan error, 1)
	go func() { doneA <- a.RunAlerts(ctxA, stA) }()
	defer func() {
		endA()
		require.NoError(t, <-doneA)
	}()

	// Firing: both list it, and both histories have the firing.
	sw.condition.Store("main", true)
	require.EventuallyWithT(t, func(ct *assert.CollectT) { assert.Equal(ct, 1, recA.notified("TestCondition", "main")) }, wait, 10*time.Millisecond)
	var active monitor.AlertsResponse
	for _, u := range []string{urlA, urlB} {
		require.EventuallyWithT(t, func(ct *assert.CollectT) {
			assert.Equal(ct, http.StatusOK, get(ct, u+"/api/v1/alerts?state=firing", &active))
			_, ok := findAlert(active.Alerts, "TestCondition", "main")
			assert.True(ct, ok, "%s lists the firing alert", u)
		}, wait, 20*time.Millisecond)
	}

	// Resolved: the active replica sends the resolve; then every replica's history is
	// the same firing and resolve.
	sw.condition.Store("main", false)
	require.EventuallyWithT(t, func(ct *assert.CollectT) { assert.Equal(ct, 1, recA.resolved("TestCondition", "main")) }, wait, 10*time.Millisecond)
	var histA monitor.AlertsResponse
	require.Equal(t, http.StatusOK, get(t, urlA+"/api/v1/alerts/history", &histA))
	want := transitionsOf(histA.Alerts)
	require.Len(t, want, 2, "%+v", histA.Alerts)
	assert.Equal(t, alert.Firing, want[0].State)
	assert.Equal(t, alert.Resolved, want[1].State)
	assert.Equal(t, "TestCondition", want[1].Name)
	assert.False(t, want[0].At.IsZero())
	assert.False(t, want[1].At.Before(want[0].At))

	_, urlC := replica(pgReplicaStore(t, schema), &recorder{}) // started after the incident
	for _, u := range []string{urlB, urlC} {
		var hist monitor.AlertsResponse
		require.Equal(t, http.StatusOK, get(t, u+"/api/v1/alerts/history", &hist))
		assert.Equal(t, want, transitionsOf(hist.Alerts), "%s answers the history as the active replica does", u)
		require.Equal(t, http.StatusOK, get(t, u+"/api/v1/alerts/history?cluster=main&limit=1", &hist))
		assert.Equal(t, want[1:], transitionsOf(hist.Alerts), "%s: the newest, of the cluster", u)
		assert.EventuallyWithT(t, func(ct *assert.CollectT) {
			assert.Equal(ct, http.StatusOK, get(ct, u+"/api/v1/alerts", &active))
			assert.Empty(ct, active.Alerts, "%s: nothing active", u)
		}, wait, 20*time.Millisecond)
	}
	assert.Zero(t, recB.notified("TestCondition", "main"), "the standby sent nothing")
}
