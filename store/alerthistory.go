package store

import (
	"context"
	"encoding/json"
	"time"
)

// AlertHistorian is a Store that records, as PutAlerts writes them, the transitions
// of alerts to firing and to resolved, so every process that shares the store (and a
// process after a restart) reads the same alert history. Memory, Bolt and the
// PostgreSQL store implement it.
type AlertHistorian interface {
	// AlertHistory returns the transitions q selects: the newest q.Limit, oldest first.
	AlertHistory(ctx context.Context, q AlertHistoryQuery) ([]AlertTransition, error)
}

// AlertTransition is one change of an alert's state that PutAlerts recorded.
type AlertTransition struct {
	// ID increases with each transition recorded.
	ID uint64 `json:"id"`
	// Time is when the alert changed: its FiredAt for firing, the time of the write
	// that resolved it for resolved (the engine's record in Data has the exact EndsAt
	// when it wrote the alert as resolved).
	Time        time.Time `json:"time"`
	Fingerprint string    `json:"fingerprint"`
	Cluster     string    `json:"cluster,omitempty"`
	// State is "firing" or "resolved".
	State string `json:"state"`
	// Data is the alert's Data as written: for an alert resolved by deleting it while
	// firing, as it was stored (firing).
	Data json.RawMessage `json:"data,omitempty"`
}

// AlertHistoryQuery selects alert transitions.
type AlertHistoryQuery struct {
	// Cluster selects one cluster's transitions when not empty.
	Cluster string
	// Since selects transitions at or after it.
	Since time.Time
	// Limit caps the transitions, keeping the newest; 0 means 100.
	Limit int
}

// Alert states as the store records them.
const (
	StatePending  = "pending"
	StateFiring   = "firing"
	StateResolved = "resolved"
)

// Transitions returns the transitions (ID unset) that writing put and deleting del
// makes of the stored alerts before (by fingerprint), at now: an alert put as firing
// that was pending or absent fires (at its FiredAt, or now); an alert put as resolved
// that was not resolves (now); a firing alert deleted resolves (now), as the engine
// deletes an alert whose resolve no receiver waits for. Implementations call it in the
// transaction of PutAlerts, with before holding at least the fingerprints of put and
// del; it updates before with put.
func Transitions(before map[string]Alert, put []Alert, del []string, now time.Time) []AlertTransition {
	var out []AlertTransition
	written := make(map[string]bool, len(put))
	for _, a := range put {
		written[a.Fingerprint] = true
	}
	for _, fp := range del {
		if b, ok := before[fp]; ok && !written[fp] && b.State == StateFiring {
			out = append(out, AlertTransition{Time: now, Fingerprint: fp, Cluster: b.Cluster, State: StateResolved, Data: b.Data})
		}
	}
	for _, a := range put {
		b, had := before[a.Fingerprint]
		switch {
		case a.State == StateFiring && (!had || b.State == StatePending || b.State == StateResolved):
			at := a.FiredAt
			if at.IsZero() {
				at = now
			}
			out = append(out, AlertTransition{Time: at, Fingerprint: a.Fingerprint, Cluster: a.Cluster, State: StateFiring, Data: a.Data})
		case a.State == StateResolved && (!had || b.State != StateResolved):
			out = append(out, AlertTransition{Time: now, Fingerprint: a.Fingerprint, Cluster: a.Cluster, State: StateResolved, Data: a.Data})
		}
		before[a.Fingerprint] = a // a fingerprint put twice in one call
	}
	return out
}

func matchTransition(tr AlertTransition, q AlertHistoryQuery) bool {
	return (q.Cluster == "" || tr.Cluster == q.Cluster) && !tr.Time.Before(q.Since)
}
