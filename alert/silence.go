package alert

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/etcd-monitor/etcd-monitor/store"
)

// Silence states.
const (
	SilencePending = "pending"
	SilenceActive  = "active"
	SilenceExpired = "expired"
)

// Silence mutes the alerts all its matchers match, from StartsAt until EndsAt. Its JSON
// is Alertmanager's API v2 shape.
type Silence struct {
	ID        string        `json:"id"`
	Matchers  Matchers      `json:"matchers"`
	StartsAt  time.Time     `json:"startsAt"`
	EndsAt    time.Time     `json:"endsAt"`
	UpdatedAt time.Time     `json:"updatedAt"`
	CreatedBy string        `json:"createdBy"`
	Comment   string        `json:"comment"`
	Status    SilenceStatus `json:"status"`
}

// SilenceStatus is a silence's state: pending (not started), active or expired.
type SilenceStatus struct {
	State string `json:"state"`
}

func (s *Silence) active(now time.Time) bool { return !now.Before(s.StartsAt) && now.Before(s.EndsAt) }

func (s *Silence) state(now time.Time) string {
	switch {
	case now.Before(s.StartsAt):
		return SilencePending
	case now.Before(s.EndsAt):
		return SilenceActive
	}
	return SilenceExpired
}

// validate checks a new silence; StartsAt in the past (or zero) becomes now.
func (s *Silence) validate(now time.Time) error {
	if len(s.Matchers) == 0 {
		return fieldErr("matchers", "at least one matcher is required")
	}
	ms, err := s.Matchers.compile("matchers")
	if err != nil {
		return err
	}
	s.Matchers = ms
	allEmpty := true
	for _, m := range ms {
		if !m.Matches("") {
			allEmpty = false
		}
	}
	if allEmpty {
		return fieldErr("matchers", "at least one matcher must not match the empty string (the silence would match every alert)")
	}
	if s.StartsAt.IsZero() || s.StartsAt.Before(now) {
		s.StartsAt = now
	}
	switch {
	case s.EndsAt.IsZero():
		return fieldErr("endsAt", "required")
	case !s.EndsAt.After(s.StartsAt):
		return fieldErr("endsAt", "%s is not after startsAt %s", s.EndsAt.Format(time.RFC3339), s.StartsAt.Format(time.RFC3339))
	case strings.TrimSpace(s.CreatedBy) == "":
		return fieldErr("createdBy", "required")
	case strings.TrimSpace(s.Comment) == "":
		return fieldErr("comment", "required")
	}
	return nil
}

func newSilenceID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// CreateSilence validates s and stores it. With an empty ID it creates a silence;
// with the ID of an unexpired silence it replaces it. Bad input is a *FieldError naming
// the field (matchers, endsAt, createdBy, comment); an unknown ID is
// ErrSilenceNotFound. It returns the silence as stored.
func (m *Manager) CreateSilence(ctx context.Context, s Silence) (Silence, error) {
	if err := ctx.Err(); err != nil {
		return Silence{}, err
	}
	now := time.Now()
	if err := s.validate(now); err != nil {
		return Silence{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return Silence{}, ErrClosed
	}
	if s.ID != "" {
		old, ok := m.silences[s.ID]
		if !ok {
			return Silence{}, fmt.Errorf("%w: %q", ErrSilenceNotFound, s.ID)
		}
		if old.state(now) == SilenceExpired {
			return Silence{}, fieldErr("id", "silence %s has expired; create a new one", s.ID)
		}
	} else {
		s.ID = newSilenceID()
	}
	s.UpdatedAt = now
	m.pruneSilences(ctx, now)
	if err := m.st.PutSilence(ctx, silenceToStore(s)); err != nil {
		return Silence{}, fmt.Errorf("alert: store silence: %w", err)
	}
	m.silences[s.ID] = &s
	out := s
	out.Status.State = s.state(now)
	return out, nil
}

// Silences returns every silence, expired ones included, newest first.
func (m *Manager) Silences(ctx context.Context) ([]Silence, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	out := make([]Silence, 0, len(m.silences))
	for _, s := range m.silences {
		c := *s
		c.Matchers = slices.Clone(s.Matchers)
		c.Status.State = s.state(now)
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b Silence) int { return b.UpdatedAt.Compare(a.UpdatedAt) })
	return out, nil
}

// Silence returns the silence with the given ID, or ErrSilenceNotFound.
func (m *Manager) Silence(ctx context.Context, id string) (Silence, error) {
	if err := ctx.Err(); err != nil {
		return Silence{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.silences[id]
	if !ok {
		return Silence{}, fmt.Errorf("%w: %q", ErrSilenceNotFound, id)
	}
	c := *s
	c.Status.State = s.state(time.Now())
	return c, nil
}

// ExpireSilence ends a silence now (Alertmanager's DELETE). Expiring an expired silence
// does nothing; an unknown ID is ErrSilenceNotFound.
func (m *Manager) ExpireSilence(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.silences[id]
	if !ok {
		return fmt.Errorf("%w: %q", ErrSilenceNotFound, id)
	}
	now := time.Now()
	if s.state(now) == SilenceExpired {
		return nil
	}
	c := *s
	if now.Before(c.StartsAt) {
		c.StartsAt = now
	}
	c.EndsAt, c.UpdatedAt = now, now
	if err := m.st.PutSilence(ctx, silenceToStore(c)); err != nil {
		return fmt.Errorf("alert: store silence: %w", err)
	}
	m.silences[id] = &c
	m.poke()
	return nil
}

func silenceToStore(s Silence) store.Silence {
	out := store.Silence{ID: s.ID, StartsAt: s.StartsAt, EndsAt: s.EndsAt, UpdatedAt: s.UpdatedAt, CreatedBy: s.CreatedBy, Comment: s.Comment}
	for _, m := range s.Matchers {
		out.Matchers = append(out.Matchers, store.Matcher{Name: m.Name, Value: m.Value,
			IsRegex: m.Type == MatchRegexp || m.Type == MatchNotRegexp, IsEqual: m.Type == MatchEqual || m.Type == MatchRegexp})
	}
	return out
}

func silenceFromStore(s store.Silence) Silence {
	out := Silence{ID: s.ID, StartsAt: s.StartsAt, EndsAt: s.EndsAt, UpdatedAt: s.UpdatedAt, CreatedBy: s.CreatedBy, Comment: s.Comment}
	for _, sm := range s.Matchers {
		t := map[[2]bool]MatchType{{false, true}: MatchEqual, {false, false}: MatchNotEqual, {true, true}: MatchRegexp, {true, false}: MatchNotRegexp}[[2]bool{sm.IsRegex, sm.IsEqual}]
		if m, err := NewMatcher(t, sm.Name, sm.Value); err == nil {
			out.Matchers = append(out.Matchers, m)
		}
	}
	return out
}

// SilenceRetention is how long an expired silence is kept (Alertmanager's default).
const SilenceRetention = 120 * time.Hour

// pruneSilences forgets silences expired for longer than SilenceRetention; m.mu is held.
func (m *Manager) pruneSilences(ctx context.Context, now time.Time) {
	for id, s := range m.silences {
		if now.Sub(s.EndsAt) > SilenceRetention {
			if err := m.st.DeleteSilence(ctx, id); err == nil || errors.Is(err, store.ErrNotFound) {
				delete(m.silences, id)
			}
		}
	}
}
