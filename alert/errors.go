package alert

import (
	"errors"
	"fmt"
	"time"
)

var (
	// ErrInvalidThreshold means a threshold passed to New is out of range.
	ErrInvalidThreshold = errors.New("alert: invalid threshold")
	// ErrInvalidNotifier means a notifier's settings are unusable.
	ErrInvalidNotifier = errors.New("alert: invalid notifier")
	// ErrInvalidOption means another option passed to New is unusable.
	ErrInvalidOption = errors.New("alert: invalid option")
	// ErrClosed is returned by calls on a closed Manager.
	ErrClosed = errors.New("alert: manager closed")
	// ErrDelivery means a notifier did not accept an alert.
	ErrDelivery = errors.New("alert: delivery failed")
	// ErrQueueFull means a notifier's queue was full and the alert was not queued.
	ErrQueueFull = errors.New("alert: notifier queue full")
)

// HTTPError is a non-2xx answer from an HTTP notifier. It matches ErrDelivery.
type HTTPError struct {
	StatusCode int
	// RetryAfter is the delay the server asked for (Retry-After), zero if none.
	RetryAfter time.Duration
	Body       string
}

func (e *HTTPError) Error() string {
	msg := fmt.Sprintf("alert: delivery failed: HTTP %d", e.StatusCode)
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

// Is makes errors.Is(err, ErrDelivery) true.
func (e *HTTPError) Is(target error) bool { return target == ErrDelivery }

// Temporary reports whether a retry may succeed: 429 and 5xx.
func (e *HTTPError) Temporary() bool {
	return e.StatusCode == 429 || e.StatusCode >= 500
}

// permanent marks an error that retrying cannot fix.
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// Permanent wraps err so that the Manager does not retry the delivery. Notifiers return
// it for errors such as a rejected recipient.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanent{err}
}
