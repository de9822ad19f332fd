package monitor

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/etcd-monitor/etcd-monitor/alert"
)

// NotificationsResponse is the body of GET /api/v1/alerts/notifications: the
// notification log, newest first.
type NotificationsResponse struct {
	Notifications []alert.NotificationRecord `json:"notifications"`
}

func (s *Service) getNotifications(_ http.ResponseWriter, r *http.Request, q query) (any, error) {
	m, err := s.readManager(r.Context())
	if err != nil {
		return nil, err
	}
	recs, err := m.Notifications(r.Context(), alert.NotificationQuery{Receiver: q.receiver, Limit: q.limit})
	if err != nil {
		return nil, alertError(err)
	}
	if recs == nil {
		recs = []alert.NotificationRecord{}
	}
	return NotificationsResponse{Notifications: recs}, nil
}

// SilencesResponse is the body of GET /api/v1/silences: every silence, newest first.
type SilencesResponse struct {
	Silences []alert.Silence `json:"silences"`
}

func (s *Service) getSilences(_ http.ResponseWriter, r *http.Request, _ query) (any, error) {
	m, err := s.readManager(r.Context())
	if err != nil {
		return nil, err
	}
	sils, err := m.Silences(r.Context())
	if err != nil {
		return nil, alertError(err)
	}
	if sils == nil {
		sils = []alert.Silence{}
	}
	return SilencesResponse{Silences: sils}, nil
}

// SilenceRequest is the body of POST /api/v1/silences: Alertmanager's API v2 silence.
// StartsAt defaults to now; ID, when given, names an unexpired silence to replace.
type SilenceRequest struct {
	ID        string          `json:"id,omitempty"`
	Matchers  []alert.Matcher `json:"matchers"`
	StartsAt  time.Time       `json:"startsAt,omitzero"`
	EndsAt    time.Time       `json:"endsAt"`
	CreatedBy string          `json:"createdBy,omitempty"`
	Comment   string          `json:"comment,omitempty"`
}

// postSilence creates a silence, or replaces the unexpired one its "id" names.
func (s *Service) postSilence(_ http.ResponseWriter, r *http.Request, _ query) (any, error) {
	body, err := readBody(r, maxSilenceBody)
	if err != nil {
		return nil, err
	}
	sil, err := parseSilence(body)
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "%v", err)
	}
	m := s.alertManager()
	if m == nil {
		return nil, s.standbyError()
	}
	created, err := m.CreateSilence(r.Context(), sil)
	if err != nil {
		return nil, alertError(err)
	}
	s.opts.logger.Info("silence saved", zap.String("id", created.ID), zap.Stringer("matchers", matchersString(created.Matchers)),
		zap.Time("endsAt", created.EndsAt), zap.String("createdBy", created.CreatedBy))
	return created, nil
}

func (s *Service) getSilence(_ http.ResponseWriter, r *http.Request, _ query) (any, error) {
	m, err := s.readManager(r.Context())
	if err != nil {
		return nil, err
	}
	sil, err := m.Silence(r.Context(), r.PathValue("id"))
	if err != nil {
		return nil, alertError(err)
	}
	return sil, nil
}

// deleteSilence expires a silence (it stays listed, as expired) and answers with it.
func (s *Service) deleteSilence(_ http.ResponseWriter, r *http.Request, _ query) (any, error) {
	id := r.PathValue("id")
	m := s.alertManager()
	if m == nil {
		return nil, s.standbyError()
	}
	if err := m.ExpireSilence(r.Context(), id); err != nil {
		return nil, alertError(err)
	}
	s.opts.logger.Info("silence expired", zap.String("id", id))
	sil, err := m.Silence(r.Context(), id)
	if err != nil {
		return nil, alertError(err)
	}
	return sil, nil
}

// parseSilence reads a silence field by field, so that an error names the field at
// fault ("matchers[1]", "endsAt") and an unknown field is refused.
func parseSilence(body []byte) (alert.Silence, error) {
	var sil alert.Silence
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return sil, fmt.Errorf("malformed JSON body: %w", err)
	}
	for name, raw := range fields {
		var err error
		switch name {
		case "id":
			err = json.Unmarshal(raw, &sil.ID)
		case "createdBy":
			err = json.Unmarshal(raw, &sil.CreatedBy)
		case "comment":
			err = json.Unmarshal(raw, &sil.Comment)
		case "startsAt", "endsAt":
			t := &sil.StartsAt
			if name == "endsAt" {
				t = &sil.EndsAt
			}
			if err = json.Unmarshal(raw, t); err != nil {
				err = fmt.Errorf("want an RFC 3339 time such as %q", time.Now().UTC().Add(time.Hour).Format(time.RFC3339))
			}
		case "matchers":
			var list []json.RawMessage
			if err = json.Unmarshal(raw, &list); err != nil {
				break
			}
			for i, m := range list {
				var mt alert.Matcher
				if err := json.Unmarshal(m, &mt); err != nil {
					return sil, fmt.Errorf("matchers[%d]: %v", i, err)
				}
				sil.Matchers = append(sil.Matchers, mt)
			}
		case "status", "updatedAt":
			err = errors.New("set by the server, not by a request")
		default:
			err = errors.New("unknown field (want matchers, startsAt, endsAt, createdBy, comment, and id to replace a silence)")
		}
		if err != nil {
			return sil, fmt.Errorf("%s: %v", name, err)
		}
	}
	return sil, nil
}

type matchersString alert.Matchers

func (m matchersString) String() string {
	parts := make([]string, len(m))
	for i, x := range m {
		parts[i] = x.String()
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// alertError maps the alert manager's errors to answers: bad input (naming the field)
// 400, an unknown silence 404, a closed manager 503.
func alertError(err error) error {
	var fe *alert.FieldError
	switch {
	case errors.As(err, &fe):
		return errorf(http.StatusBadRequest, "%s: %s", fe.Field, fe.Reason)
	case errors.Is(err, alert.ErrInvalidArgument):
		return errorf(http.StatusBadRequest, "%v", err)
	case errors.Is(err, alert.ErrSilenceNotFound):
		return errorf(http.StatusNotFound, "%v", err)
	case errors.Is(err, alert.ErrClosed):
		return errorf(http.StatusServiceUnavailable, "service is shutting down")
	}
	return err
}
