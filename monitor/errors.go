package monitor

import "errors"

var (
	// ErrInvalidOption means an option or a Cluster passed to New is unusable.
	ErrInvalidOption = errors.New("monitor: invalid option")
	// ErrClosed is returned by Run on a closed Service.
	ErrClosed = errors.New("monitor: service closed")
	// ErrRunning is returned by Run while another Run of the same Service is going.
	ErrRunning = errors.New("monitor: service already running")
)
