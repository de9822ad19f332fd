package metrics

import "errors"

var (
	// ErrMembers means the membership list could not be read and none is known.
	ErrMembers = errors.New("metrics: member list unavailable")
	// ErrInvalidOption means an option passed to New is out of range.
	ErrInvalidOption = errors.New("metrics: invalid option")
	// ErrScrape means a member's /metrics could not be fetched or parsed.
	ErrScrape = errors.New("metrics: scrape failed")
	// ErrProbe means a member did not answer the latency probe.
	ErrProbe = errors.New("metrics: probe failed")
	// ErrNoMetricsURL means a member serves no /metrics the collector can reach (no
	// http(s) client URL and none given with WithMetricsURLs).
	ErrNoMetricsURL = errors.New("metrics: no metrics URL")
)
