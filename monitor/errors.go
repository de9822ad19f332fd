package monitor

import "errors"

var (
	// ErrInvalidArgument means an argument, option or Cluster passed to New, or a query
	// passed to an accessor, is unusable; the wrapping error names it.
	ErrInvalidArgument = errors.New("monitor: invalid argument")
	// ErrUnknownCluster is returned by an accessor given a name the Service does not
	// monitor (the API answers 404).
	ErrUnknownCluster = errors.New("monitor: unknown cluster")
	// ErrNoData is returned by an accessor before the cluster's first health check or
	// metric collection has completed (the API answers 503 with Retry-After).
	ErrNoData = errors.New("monitor: no data yet")
	// ErrClosed is returned by Run on a closed Service.
	ErrClosed = errors.New("monitor: service closed")
	// ErrRunning is returned by Run while another Run of the same Service is going.
	ErrRunning = errors.New("monitor: service already running")
)
