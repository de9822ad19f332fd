package ownership

import "time"

// Slow returns the slowest recent renewal, as RenewInterval is given it.
func (s *Session) Slow() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.slow
}
