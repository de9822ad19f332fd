package bench

import (
	"errors"
	"fmt"
)

var (
	// ErrInvalidArgument is matched by every *ConfigError and by the errors of New for a
	// nil client or a bad option.
	ErrInvalidArgument = errors.New("bench: invalid argument")
	// ErrNoLeader is returned when Config.TargetLeader is set and no endpoint reports
	// itself as the leader.
	ErrNoLeader = errors.New("bench: no leader found")
	// ErrMismatch is returned by Compare when the baseline ran a different workload.
	ErrMismatch = errors.New("bench: baseline is for a different workload")
	// ErrQuota is returned when the quota guard refuses a run: what it would write could
	// push a member's database past the share of its quota set by WithQuotaShare, or the
	// members' database sizes cannot be read. The wrapping error names the member and
	// the figures.
	ErrQuota = errors.New("bench: quota guard")
)

// ConfigError names the configuration field that is wrong and why. It matches
// ErrInvalidArgument with errors.Is.
type ConfigError struct {
	Field  string
	Reason string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("bench: invalid argument: %s: %s", e.Field, e.Reason)
}

// Is reports whether target is ErrInvalidArgument.
func (e *ConfigError) Is(target error) bool { return target == ErrInvalidArgument }
