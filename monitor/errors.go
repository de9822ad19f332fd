package monitor

import "errors"

var (
	// ErrInvalidArgument means an argument, option or Cluster passed to New is unusable;
	// the wrapping error names it.
	ErrInvalidArgument = errors.New("monitor: invalid argument")
	// ErrClosed is returned by Run on a closed Service.
	ErrClosed = errors.New("monitor: service closed")
	// ErrRunning is returned by Run while another Run of the same Service is going.
	ErrRunning = errors.New("monitor: service already running")
)
