package ownership

import "time"

// Slow returns the slowest recent renewal, as RenewInterval is given it.
func (s *Session) Slow() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.slow
}

// Sweeping reports whether the janitor is at work.
func (s *Session) Sweeping() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !isClosed(s.sweeping)
}

// Tracked reports whether key is registered on the session.
func (s *Session) Tracked(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.keys[key]
	return ok
}

// SetWallClock makes the session read the wall clock from now.
func (s *Session) SetWallClock(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.wall = now
}
