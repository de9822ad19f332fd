package discovery

import (
	"errors"
	"fmt"
)

var (
	// ErrInvalidArgument is wrapped by constructors and calls for an invalid argument or
	// option: a nil client, resolver or option, an empty prefix, an option the
	// constructor does not use, an out-of-range value. The message names the argument.
	ErrInvalidArgument = errors.New("discovery: invalid argument")
	// ErrInvalidInstance is returned for an instance that cannot be registered: empty or
	// malformed service name or ID, missing address, port out of range, weight outside
	// 0-MaxWeight. It wraps ErrInvalidArgument.
	ErrInvalidInstance = fmt.Errorf("%w: instance", ErrInvalidArgument)
	// ErrNotRegistered is returned by Deregister, Drain and Undrain for an instance this
	// Registrar does not hold.
	ErrNotRegistered = errors.New("discovery: instance not registered")
	// ErrNoInstance is returned by Pick when the service has no instance that may be picked
	// (none registered, all drained, or all cooling down after a failure).
	ErrNoInstance = errors.New("discovery: no available instance")
	// ErrNotReady is returned when a Resolver has not finished its first listing.
	ErrNotReady = errors.New("discovery: resolver not ready")
	// ErrClosed is returned by calls on a closed Registrar, Resolver or Balancer, and by
	// a Registrar call that Close interrupted.
	ErrClosed = errors.New("discovery: closed")
)

// InstanceError says which field of an instance is invalid. It matches ErrInvalidInstance
// and ErrInvalidArgument with errors.Is.
type InstanceError struct {
	Service, ID string
	Field       string
	Reason      string
}

func (e *InstanceError) Error() string {
	return fmt.Sprintf("discovery: invalid instance %s/%s: %s %s", e.Service, e.ID, e.Field, e.Reason)
}

// Is reports whether target is ErrInvalidInstance or ErrInvalidArgument.
func (e *InstanceError) Is(target error) bool {
	return target == ErrInvalidInstance || target == ErrInvalidArgument
}
