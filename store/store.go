package store

import (
	"context"
	"encoding/json"
	"time"
)

// Store is the daemon's durable state. Implementations must be safe for concurrent use.
type Store interface {
	// Alerts returns every stored alert.
	Alerts(ctx context.Context) ([]Alert, error)
	// PutAlerts stores put (replacing records of the same fingerprint) and deletes the
	// fingerprints in del, in one transaction.
	PutAlerts(ctx context.Context, put []Alert, del []string) error

	// Groups returns the notification state of every receiver's groups.
	Groups(ctx context.Context) ([]Group, error)
	// PutGroup stores g, replacing the record of the same receiver and group key.
	PutGroup(ctx context.Context, g Group) error
	// DeleteGroup deletes a group's state; deleting a missing one is not an error.
	DeleteGroup(ctx context.Context, receiver, groupKey string) error

	// AppendNotification appends n to the notification log and returns it with its ID
	// (increasing) set.
	AppendNotification(ctx context.Context, n Notification) (Notification, error)
	// Notifications returns log records matching q, newest first.
	Notifications(ctx context.Context, q NotificationQuery) ([]Notification, error)

	// Silences returns every stored silence, expired ones included.
	Silences(ctx context.Context) ([]Silence, error)
	// PutSilence stores s, replacing the silence of the same ID.
	PutSilence(ctx context.Context, s Silence) error
	// DeleteSilence deletes a silence; ErrNotFound when there is none.
	DeleteSilence(ctx context.Context, id string) error

	// PutBenchmark stores a benchmark result, replacing the one of the same ID.
	PutBenchmark(ctx context.Context, b Benchmark) error
	// Benchmarks returns stored results matching q, newest first.
	Benchmarks(ctx context.Context, q BenchmarkQuery) ([]Benchmark, error)

	// PutHealthChecks stores health checks in history. History writes may be
	// asynchronous (the PostgreSQL store queues them): nil then means accepted, and a
	// read may not see them yet.
	PutHealthChecks(ctx context.Context, checks []HealthCheck) error
	// HealthChecks returns the health checks matching q, oldest first.
	HealthChecks(ctx context.Context, q HistoryQuery) ([]HealthCheck, error)
	// PutMetricSnapshots stores metric snapshots in history.
	PutMetricSnapshots(ctx context.Context, snaps []MetricSnapshot) error
	// MetricSnapshots returns the metric snapshots matching q, oldest first.
	MetricSnapshots(ctx context.Context, q HistoryQuery) ([]MetricSnapshot, error)

	// PutMaintenanceOp stores op, replacing the operation of the same ID.
	PutMaintenanceOp(ctx context.Context, op MaintenanceOp) error
	// MaintenanceOps returns the operations matching q, newest Started first.
	MaintenanceOps(ctx context.Context, q MaintenanceQuery) ([]MaintenanceOp, error)

	// Close releases the store. It is idempotent.
	Close() error
}

// Alert is a pending or firing alert as the alert engine keeps it.
type Alert struct {
	Fingerprint string `json:"fingerprint"`
	Cluster     string `json:"cluster,omitempty"`
	// State is "pending" or "firing".
	State string `json:"state"`
	// ActiveAt is when the condition was first seen, FiredAt when it started firing.
	ActiveAt time.Time `json:"activeAt"`
	FiredAt  time.Time `json:"firedAt,omitzero"`
	// Data is the engine's full record of the alert (labels, annotations, ...).
	Data json.RawMessage `json:"data,omitempty"`
}

// Group is what was last notified successfully to one receiver for one group.
type Group struct {
	Receiver string `json:"receiver"`
	GroupKey string `json:"groupKey"`
	// SentAt is the time of the last successful notification.
	SentAt time.Time `json:"sentAt"`
	// Firing and Resolved are the fingerprints notified as firing and as resolved then.
	Firing   []string `json:"firing,omitempty"`
	Resolved []string `json:"resolved,omitempty"`
	// Data is the engine's record of the group's alerts (so resolves can be sent after a
	// restart even for alerts that are gone).
	Data json.RawMessage `json:"data,omitempty"`
}

// Notification is one entry of the notification log: one attempt to notify one group
// to one receiver.
type Notification struct {
	ID          uint64            `json:"id"`
	Time        time.Time         `json:"time"`
	Receiver    string            `json:"receiver"`
	GroupKey    string            `json:"groupKey"`
	GroupLabels map[string]string `json:"groupLabels,omitempty"`
	Attempt     int               `json:"attempt"`
	// Status is "sent", "failed" (given up), "retrying" or "dropped".
	Status string `json:"status"`
	// Error is why the attempt failed, with secrets redacted by the caller.
	Error    string   `json:"error,omitempty"`
	Firing   []string `json:"firing,omitempty"`
	Resolved []string `json:"resolved,omitempty"`
}

// NotificationQuery selects notification log records.
type NotificationQuery struct {
	// Receiver and GroupKey select when not empty.
	Receiver string
	GroupKey string
	// Limit caps the number of records (newest first); 0 means 100.
	Limit int
}

// Matcher is one label matcher of a silence, in Alertmanager's API form.
type Matcher struct {
	Name    string `json:"name"`
	Value   string `json:"value"`
	IsRegex bool   `json:"isRegex"`
	IsEqual bool   `json:"isEqual"`
}

// Silence mutes the alerts its matchers all match between StartsAt and EndsAt.
type Silence struct {
	ID        string    `json:"id"`
	Matchers  []Matcher `json:"matchers"`
	StartsAt  time.Time `json:"startsAt"`
	EndsAt    time.Time `json:"endsAt"`
	UpdatedAt time.Time `json:"updatedAt"`
	CreatedBy string    `json:"createdBy"`
	Comment   string    `json:"comment"`
}

// Benchmark is a stored benchmark result.
type Benchmark struct {
	ID      string          `json:"id"`
	Time    time.Time       `json:"time"`
	Cluster string          `json:"cluster,omitempty"`
	Name    string          `json:"name,omitempty"`
	Data    json.RawMessage `json:"data,omitempty"`
}

// BenchmarkQuery selects benchmark results.
type BenchmarkQuery struct {
	// Cluster selects when not empty.
	Cluster string
	// Limit caps the number of results (newest first); 0 means 100.
	Limit int
}

func limitOr(n int) int {
	if n <= 0 {
		return 100
	}
	return n
}

func groupID(receiver, key string) string { return receiver + "\x00" + key }
