package monitor

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/alert"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/maintenance"
	"github.com/etcd-monitor/etcd-monitor/store"
)

// A NOSPACE recovery that failed because the live data itself fills the quota is not
// retried after RetryFailed: compacting and defragmenting every member again cannot
// help, so it waits Retry, as after a success. A failure that may pass (the cluster was
// unhealthy, a defragmentation aborted) is retried after RetryFailed.
func TestRemediationRetriesOverQuotaAfterRetryOnly(t *testing.T) {
	s, err := New([]Cluster{{Name: "one", Client: etcdtest.Client(t)}}, WithStore(store.NewMemory()),
		WithRemediation("one", Remediation{NoSpace: true}))
	require.NoError(t, err)
	defer s.Close()
	c := s.maint.clusters["one"]
	firing := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	for i, tc := range []struct {
		err     error
		retried bool
	}{
		{fmt.Errorf("disarm: %w", maintenance.ErrOverQuota), false},
		{fmt.Errorf("defragment: %w: %w", maintenance.ErrAborted, maintenance.ErrUnhealthy), true},
		{fmt.Errorf("compact: %w", maintenance.ErrUnhealthy), true},
	} {
		a := alert.Alert{Name: AlertAlarm, Fingerprint: fmt.Sprintf("fp%d", i), StartsAt: firing,
			Labels: map[string]string{"cluster": "one", "alarm": "NOSPACE"}}
		fail := func(context.Context, func(maintenance.MemberDefrag)) (any, error) {
			return nil, tc.err
		}
		require.Equal(t, "started "+OpRecoverNoSpace, s.maint.act(c, []alert.Alert{a}, firing, OpRecoverNoSpace, nil, fail), "%v", tc.err)
		ops := finished(t, s, c)
		require.NotEmpty(t, ops)
		require.Equal(t, OpFailed, ops[0].State, "%v", tc.err)

		got := s.maint.act(c, []alert.Alert{a}, firing.Add(2*RetryFailed), OpRecoverNoSpace, nil, fail)
		if tc.retried {
			assert.Equal(t, "started "+OpRecoverNoSpace, got, "%v: retried after RetryFailed", tc.err)
		} else {
			assert.Equal(t, "acted already", got, "%v: not retried after RetryFailed", tc.err)
			finished(t, s, c)
			assert.Equal(t, "started "+OpRecoverNoSpace, s.maint.act(c, []alert.Alert{a}, firing.Add(DefaultRemediationRetry), OpRecoverNoSpace, nil, fail),
				"%v: retried after Retry", tc.err)
		}
		finished(t, s, c)
	}
}

// What remediation did is remembered across a restart (or a replica's takeover) through
// the store: a new Service over the same store does not act again on an alert that an
// earlier one acted on within Retry, and retries one whose operation failed after
// RetryFailed.
func TestRemediationRemembersAcrossRestart(t *testing.T) {
	st := store.NewMemory()
	defer st.Close()
	cli := etcdtest.Client(t)
	service := func() (*Service, *clusterMaint) {
		s, err := New([]Cluster{{Name: "one", Client: cli}}, WithStore(st), WithRemediation("one", Remediation{NoSpace: true}))
		require.NoError(t, err)
		return s, s.maint.clusters["one"]
	}
	firing := time.Now().UTC().Add(-time.Minute)
	ok := alert.Alert{Name: AlertAlarm, Fingerprint: "fp-ok", StartsAt: firing, Labels: map[string]string{"cluster": "one", "alarm": "NOSPACE"}}
	bad := alert.Alert{Name: AlertAlarm, Fingerprint: "fp-bad", StartsAt: firing, Labels: map[string]string{"cluster": "one", "alarm": "NOSPACE"}}
	succeed := func(context.Context, func(maintenance.MemberDefrag)) (any, error) { return nil, nil }
	fail := func(context.Context, func(maintenance.MemberDefrag)) (any, error) {
		return nil, fmt.Errorf("compact: %w", maintenance.ErrUnhealthy)
	}

	s1, c1 := service()
	require.Equal(t, "started "+OpRecoverNoSpace, s1.maint.act(c1, []alert.Alert{ok}, time.Now(), OpRecoverNoSpace, nil, succeed))
	finished(t, s1, c1)
	require.Equal(t, "started "+OpRecoverNoSpace, s1.maint.act(c1, []alert.Alert{bad}, time.Now(), OpRecoverNoSpace, nil, fail))
	finished(t, s1, c1)
	require.NoError(t, s1.Close())

	s2, c2 := service()
	defer s2.Close()
	now := time.Now()
	assert.Equal(t, "acted already", s2.maint.act(c2, []alert.Alert{ok}, now, OpRecoverNoSpace, nil, succeed), "acted on within Retry")
	assert.Equal(t, "acted already", s2.maint.act(c2, []alert.Alert{bad}, now, OpRecoverNoSpace, nil, succeed), "failed within RetryFailed")
	assert.Equal(t, "started "+OpRecoverNoSpace, s2.maint.act(c2, []alert.Alert{bad}, now.Add(RetryFailed), OpRecoverNoSpace, nil, succeed),
		"failed: retried after RetryFailed")
	finished(t, s2, c2)
	// A dry run does not count for a remediation that acts.
	dry := alert.Alert{Name: AlertAlarm, Fingerprint: "fp-dry", StartsAt: firing, Labels: map[string]string{"cluster": "one", "alarm": "NOSPACE"}}
	c2.rem.DryRun = true
	require.Equal(t, "started "+OpRecoverNoSpace, s2.maint.act(c2, []alert.Alert{dry}, time.Now(), OpRecoverNoSpace, nil, succeed))
	finished(t, s2, c2)
	c2.rem.DryRun = false
	c2.mu.Lock()
	delete(c2.acted, dry.Fingerprint) // as after a restart
	c2.mu.Unlock()
	assert.Equal(t, "started "+OpRecoverNoSpace, s2.maint.act(c2, []alert.Alert{dry}, time.Now(), OpRecoverNoSpace, nil, succeed))
	finished(t, s2, c2)
	// A new firing of the alert (another StartsAt) is acted on at once.
	again := ok
	again.StartsAt = time.Now().UTC()
	assert.Equal(t, "started "+OpRecoverNoSpace, s2.maint.act(c2, []alert.Alert{again}, time.Now(), OpRecoverNoSpace, nil, succeed))
	finished(t, s2, c2)
}
