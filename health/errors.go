package health

import "errors"

var (
	// ErrMembers means the membership list could not be read and no earlier list is known.
	ErrMembers = errors.New("health: member list unavailable")
	// ErrInvalidArgument means an argument or option passed to New is unusable; the
	// wrapping error names it.
	ErrInvalidArgument = errors.New("health: invalid argument")
	// ErrNoEndpoint means a member has no client URL to probe.
	ErrNoEndpoint = errors.New("health: member has no endpoint")
)
