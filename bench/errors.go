package bench

import (
	"errors"
	"fmt"
)

var (
	// ErrInvalidConfig is matched by every *ConfigError.
	ErrInvalidConfig = errors.New("bench: invalid config")
	// ErrNoLeader is returned when Config.TargetLeader is set and no endpoint reports
	// itself as the leader.
	ErrNoLeader = errors.New("bench: no leader found")
	// ErrMismatch is returned by Compare when the baseline ran a different workload.
	ErrMismatch = errors.New("bench: baseline is for a different workload")
)

// ConfigError names the configuration field that is wrong and why. It matches
// ErrInvalidConfig with errors.Is.
type ConfigError struct {
	Field  string
	Reason string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("bench: invalid config: %s: %s", e.Field, e.Reason)
}

// Is reports whether target is ErrInvalidConfig.
func (e *ConfigError) Is(target error) bool { return target == ErrInvalidConfig }
