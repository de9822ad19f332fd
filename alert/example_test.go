package alert_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/etcd-monitor/etcd-monitor/alert"
	"github.com/etcd-monitor/etcd-monitor/health"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/metrics"
)

// Route an alert to an Alertmanager-style webhook. The rule warns about a cluster with
// fewer than three members — true of the single-node cluster this example runs on.
func ExampleManager_webhook() {
	received := make(chan alert.WebhookMessage, 10)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var msg alert.WebhookMessage
		if err := json.NewDecoder(r.Body).Decode(&msg); err == nil {
			received <- msg
		}
	}))
	defer receiver.Close()

	cli, err := etcdtest.NewClient()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cli.Close()
	checker, err := health.New(cli)
	if err != nil {
		fmt.Println(err)
		return
	}

	small := alert.Rule{
		Name: "EtcdFewMembers", Severity: alert.Warning, Summary: "cluster cannot survive a member failure",
		Eval: func(h *health.Report, _ *metrics.Snapshot) []alert.Finding {
			if h == nil || len(h.Members) >= 3 {
				return nil
			}
			return []alert.Finding{{Value: float64(len(h.Members)), Description: fmt.Sprintf("%d member(s)", len(h.Members))}}
		},
	}
	m, err := alert.New(
		alert.WithExtraRules(small),
		alert.WithWebhook(alert.WebhookConfig{URL: receiver.URL}),
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	report, err := checker.Check(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	for range 3 { // evaluated three times, delivered once
		if _, err := m.Evaluate(ctx, report, nil); err != nil {
			fmt.Println(err)
			return
		}
	}
	if err := m.Flush(ctx); err != nil {
		fmt.Println(err)
		return
	}
	close(received)
	for msg := range received {
		a := msg.Alerts[0]
		fmt.Println(msg.Version, msg.Status, a.Labels["alertname"], a.Labels["severity"], a.Annotations["description"])
	}
	// Output:
	// 4 firing EtcdFewMembers warning 1 member(s)
}
