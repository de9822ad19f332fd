package alert_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"gopkg.in/yaml.v3"

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
	defer checker.Close()

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

// Route critical alerts to a pager and a chat, warnings to the chat only; a silence
// mutes one cluster's alerts.
func ExampleManager_routing() {
	var cfg alert.Config
	err := yaml.Unmarshal([]byte(`
route:
  receiver: chat
  routes:
    - matchers: ['severity="critical"']
      receiver: pager
      continue: true
    - matchers: ['severity=~"critical|warning"']
      receiver: chat
`), &cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	print := func(name string) alert.Sender {
		return alert.SenderFunc(func(_ context.Context, n alert.Notification) error {
			fmt.Printf("%s: %s %s (%s)\n", name, n.Status, n.GroupLabels["alertname"], n.GroupLabels["cluster"])
			return nil
		})
	}
	always := func(name string, sev alert.Severity) alert.Rule {
		return alert.Rule{Name: name, Severity: sev, Summary: name,
			Eval: func(*health.Report, *metrics.Snapshot) []alert.Finding { return []alert.Finding{{}} }}
	}
	m, err := alert.New(alert.WithConfig(cfg), alert.WithReceiver("pager", print("pager"), true),
		alert.WithReceiver("chat", print("chat"), true),
		alert.WithRules(always("QuorumLost", alert.Critical), always("DiskSlow", alert.Warning)))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	ctx := context.Background()
	_, err = m.CreateSilence(ctx, alert.Silence{Matchers: alert.MustParseMatchers(`cluster="lab"`),
		EndsAt: time.Now().Add(time.Hour), CreatedBy: "ops", Comment: "lab maintenance"})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, cluster := range []string{"prod", "lab"} {
		if _, err := m.EvaluateCluster(ctx, cluster, &health.Report{Time: time.Now()}, nil); err != nil {
			fmt.Println(err)
		}
	}
	// Flush sends what group_wait would have sent 10 s later.
	if err := m.Flush(ctx); err != nil {
		fmt.Println(err)
	}
	// Unordered output:
	// pager: firing QuorumLost (prod)
	// chat: firing QuorumLost (prod)
	// chat: firing DiskSlow (prod)
}
