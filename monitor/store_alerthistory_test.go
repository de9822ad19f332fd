package monitor_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/monitor"
	"github.com/etcd-monitor/etcd-monitor/store"
)

// The alert history from the store is selected by severity, cluster and limit as the
// engine's own: the newest of the severity asked, even when they are few among many.
func TestStoreAlertHistorySelects(t *testing.T) {
	st := store.NewMemory()
	defer st.Close()
	ctx := context.Background()
	base := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	for i := range 300 {
		sev := "warning"
		if i%100 == 7 {
			sev = "critical" // 7, 107, 207
		}
		at := base.Add(time.Duration(i) * time.Second)
		fp := fmt.Sprintf("fp%03d", i)
		data := fmt.Sprintf(`{"alert":{"fingerprint":%q,"name":"A%d","severity":%q,"state":"firing","labels":{"cluster":"local"},
			"activeAt":%q,"startsAt":%q},"rule":"A"}`, fp, i, sev, at.Format(time.RFC3339Nano), at.Format(time.RFC3339Nano))
		require.NoError(t, st.PutAlerts(ctx, []store.Alert{{Fingerprint: fp, Cluster: "local", State: "firing", ActiveAt: at, FiredAt: at,
			Data: []byte(data)}}, nil))
	}
	_, url := service(t, []monitor.Cluster{{Name: "local", Client: etcdtest.Client(t)}}, monitor.WithStore(st), monitor.WithStandby(),
		monitor.WithHealthInterval(time.Hour), monitor.WithMetricsInterval(time.Hour))
	names := func(q string) []string {
		var r monitor.AlertsResponse
		require.Equal(t, http.StatusOK, get(t, url+"/api/v1/alerts/history"+q, &r), q)
		out := []string{}
		for _, a := range r.Alerts {
			out = append(out, a.Name)
		}
		return out
	}
	assert.Equal(t, []string{"A107", "A207"}, names("?severity=critical&limit=2"))
	assert.Equal(t, []string{"A7", "A107", "A207"}, names("?severity=critical"))
	assert.Equal(t, []string{"A297", "A298", "A299"}, names("?severity=warning&limit=3"))
	assert.Equal(t, []string{"A298", "A299"}, names("?limit=2"))
	assert.Equal(t, []string{"A299"}, names("?cluster=local&limit=1"))
	assert.Len(t, names("?since="+base.Add(290*time.Second).Format(time.RFC3339)), 10)
}
