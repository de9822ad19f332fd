package alert

import (
	"errors"
	"fmt"
	"time"
)

var (
	// ErrInvalidArgument means an argument, option or configuration value is unusable.
	// Such errors are *FieldError values naming the field.
	ErrInvalidArgument = errors.New("alert: invalid argument")
	// ErrSilenceNotFound means no silence has the given ID.
	ErrSilenceNotFound = errors.New("alert: silence not found")
	// ErrClosed is returned by calls on a closed Manager.
	ErrClosed = errors.New("alert: manager closed")
	// ErrDelivery means a receiver did not accept a notification.
	ErrDelivery = errors.New("alert: delivery failed")
	// ErrQueueFull means a receiver's queue was full and a notification was dropped.
	ErrQueueFull = errors.New("alert: receiver queue full")
)

// FieldError is an invalid value, named by its path in the configuration or request
// (for example "route.routes[1].matchers[0]" or "endsAt"). It matches
// ErrInvalidArgument.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("alert: invalid argument: %s: %s", e.Field, e.Reason)
}

// Is makes errors.Is(err, ErrInvalidArgument) true.
func (e *FieldError) Is(target error) bool { return target == ErrInvalidArgument }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// prefix adds a parent path to a FieldError's field; other errors pass through.
func prefix(p string, err error) error {
	var fe *FieldError
	if errors.As(err, &fe) {
		f := fe.Field
		if p != "" && f != "" && f[0] != '[' {
			f = "." + f
		}
		return &FieldError{Field: p + f, Reason: fe.Reason}
	}
	return err
}

// HTTPError is a non-2xx answer from an HTTP receiver. It matches ErrDelivery.
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

// Permanent wraps err so that the Manager does not retry the delivery. Receivers return
// it for errors such as a rejected recipient.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanent{err}
}
