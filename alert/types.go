package alert

import (
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"strings"
	"time"
)

// Severity ranks alerts.
type Severity int

// Severities, lowest first.
const (
	Info Severity = iota
	Warning
	Critical
)

func (s Severity) String() string {
	switch s {
	case Info:
		return "info"
	case Warning:
		return "warning"
	case Critical:
		return "critical"
	}
	return fmt.Sprintf("severity(%d)", int(s))
}

// MarshalText writes the severity's name.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a severity's name.
func (s *Severity) UnmarshalText(b []byte) error {
	v, err := ParseSeverity(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// ParseSeverity reads "info", "warning" or "critical".
func ParseSeverity(s string) (Severity, error) {
	switch strings.ToLower(s) {
	case "info":
		return Info, nil
	case "warning":
		return Warning, nil
	case "critical":
		return Critical, nil
	}
	return 0, fieldErr("severity", "unknown severity %q (want info, warning or critical)", s)
}

// State is whether an alert is pending, firing or resolved.
type State string

// States. A pending alert's condition holds but not yet for the rule's For; pending
// alerts are never notified.
const (
	Pending  State = "pending"
	Firing   State = "firing"
	Resolved State = "resolved"
)

// AlertStatus says why a firing alert is not notified, if it is not.
type AlertStatus struct {
	// SilencedBy lists the IDs of the active silences that match the alert.
	SilencedBy []string `json:"silencedBy"`
	// InhibitedBy lists the fingerprints of the firing alerts that inhibit it.
	InhibitedBy []string `json:"inhibitedBy"`
}

// Muted reports whether the alert is silenced or inhibited.
func (s AlertStatus) Muted() bool { return len(s.SilencedBy) > 0 || len(s.InhibitedBy) > 0 }

// Alert is one instance of a rule firing (or having fired).
type Alert struct {
	// Fingerprint identifies the alert across evaluations: a hash of Name and Labels.
	Fingerprint string   `json:"fingerprint"`
	Name        string   `json:"name"`
	Severity    Severity `json:"severity"`
	State       State    `json:"state"`
	// Labels tell instances of one rule apart: "cluster", and for per-member alerts
	// "member_id" (16 hex digits, the identity) and "member" (the name, for people).
	Labels map[string]string `json:"labels,omitempty"`
	// Annotations carry "runbook_url" and whatever else the rule adds; Summary and
	// Description are also sent as the "summary" and "description" annotations.
	Annotations map[string]string `json:"annotations,omitempty"`
	Summary     string            `json:"summary"`
	Description string            `json:"description,omitempty"`
	// Value is the measured value that crossed the threshold, when there is one.
	Value float64 `json:"value"`
	// ActiveAt is when the condition was first seen (the start of pending).
	ActiveAt time.Time `json:"activeAt"`
	// StartsAt is when the alert started firing; zero while pending.
	StartsAt time.Time `json:"startsAt,omitzero"`
	// EndsAt is zero until resolved.
	EndsAt       time.Time   `json:"endsAt,omitzero"`
	GeneratorURL string      `json:"generatorURL,omitempty"`
	Status       AlertStatus `json:"status"`
}

// Fingerprint returns the fingerprint of an alert with the given name and labels: the
// FNV-64a hash of the name and the sorted label pairs, in hex. A "member" label is left
// out when a "member_id" label is present: members are identified by ID, and names may
// be empty, repeated or changed.
func Fingerprint(name string, labels map[string]string) string {
	h := fnv.New64a()
	h.Write([]byte(name))
	_, byID := labels["member_id"]
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		if byID && k == "member" {
			continue
		}
		h.Write([]byte{0xff})
		h.Write([]byte(k))
		h.Write([]byte{0xfe})
		h.Write([]byte(labels[k]))
	}
	return fmt.Sprintf("%016x", h.Sum64())
}

// Delivery records one attempt to hand an alert to a receiver (one per alert of a
// notification). Error has secrets redacted.
type Delivery struct {
	Time        time.Time `json:"time"`
	Notifier    string    `json:"notifier"`
	Fingerprint string    `json:"fingerprint"`
	Name        string    `json:"name"`
	State       State     `json:"state"`
	// Attempt counts from 1.
	Attempt int `json:"attempt"`
	// Delivered is true when the notifier accepted the alert.
	Delivered bool `json:"delivered"`
	// Final is true for the last attempt of a delivery (delivered, or given up).
	Final bool   `json:"final"`
	Error string `json:"error,omitempty"`
}
