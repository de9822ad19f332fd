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
