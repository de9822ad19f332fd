package health

import "errors"

var (
	// ErrMembers means the membership list could not be read and no earlier list is known.
	ErrMembers = errors.New("health: member list unavailable")
	// ErrInvalidOption means an option passed to New is out of range.
	ErrInvalidOption = errors.New("health: invalid option")
	// ErrNoEndpoint means a member has no client URL to probe.
	ErrNoEndpoint = errors.New("health: member has no endpoint")
)
