package metrics

import "errors"

var (
	// ErrMembers means the membership list could not be read and none is known.
	ErrMembers = errors.New("metrics: member list unavailable")
	// ErrInvalidArgument means an argument or option passed to New is unusable; the
	// error's message names it.
	ErrInvalidArgument = errors.New("metrics: invalid argument")
	// ErrScrape means a member's /metrics could not be fetched or parsed.
	ErrScrape = errors.New("metrics: scrape failed")
	// ErrTooLarge means a member's /metrics response exceeded MaxScrapeBytes. It comes
	// wrapped in ErrScrape.
	ErrTooLarge = errors.New("metrics: /metrics response too large")
	// ErrProbe means a member did not answer the latency probe.
	ErrProbe = errors.New("metrics: probe failed")
	// ErrNoMetricsURL means a member serves no /metrics the collector can reach (no
	// http(s) client URL and none given with WithMetricsURLs).
	ErrNoMetricsURL = errors.New("metrics: no metrics URL")
)
