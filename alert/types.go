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
	return 0, fmt.Errorf("%w: unknown severity %q", ErrInvalidOption, s)
}

// State is whether an alert is firing or resolved.
type State string

// States.
const (
	Firing   State = "firing"
	Resolved State = "resolved"
)

// Alert is one instance of a rule firing (or having fired).
type Alert struct {
	// Fingerprint identifies the alert across evaluations: a hash of Name and Labels.
	Fingerprint string   `json:"fingerprint"`
	Name        string   `json:"name"`
	Severity    Severity `json:"severity"`
	State       State    `json:"state"`
	// Labels tell instances of one rule apart (for example "member").
	Labels      map[string]string `json:"labels,omitempty"`
	Summary     string            `json:"summary"`
	Description string            `json:"description,omitempty"`
	// Value is the measured value that crossed the threshold, when there is one.
	Value    float64   `json:"value"`
	StartsAt time.Time `json:"startsAt"`
	// EndsAt is zero while firing.
	EndsAt time.Time `json:"endsAt,omitzero"`
}

// Fingerprint returns the fingerprint of an alert with the given name and labels: the
// FNV-64a hash of the name and the sorted label pairs, in hex.
func Fingerprint(name string, labels map[string]string) string {
	h := fnv.New64a()
	h.Write([]byte(name))
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		h.Write([]byte{0xff})
		h.Write([]byte(k))
		h.Write([]byte{0xfe})
		h.Write([]byte(labels[k]))
	}
	return fmt.Sprintf("%016x", h.Sum64())
}

// Delivery records one attempt to hand an alert to a notifier.
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
