package alert

import (
	"context"

	"go.uber.org/zap"
)

// Console logs alerts: firing critical alerts at error level, other firing alerts at
// warn, resolutions at info.
type Console struct{ log *zap.Logger }

// NewConsole returns a receiver that logs to l.
func NewConsole(l *zap.Logger) *Console { return &Console{log: l} }

// Send logs each alert of n. It never fails.
func (c *Console) Send(ctx context.Context, n Notification) error {
	for _, a := range n.Alerts {
		_ = c.Notify(ctx, a)
	}
	return nil
}

// Notify logs a. It never fails.
func (c *Console) Notify(_ context.Context, a Alert) error {
	fields := []zap.Field{
		zap.String("alert", a.Name), zap.String("state", string(a.State)),
		zap.Stringer("severity", a.Severity), zap.String("fingerprint", a.Fingerprint),
		zap.Any("labels", a.Labels), zap.String("description", a.Description),
		zap.Time("startsAt", a.StartsAt),
	}
	switch {
	case a.State == Resolved:
		c.log.Info(a.Summary, append(fields, zap.Time("endsAt", a.EndsAt))...)
	case a.Severity == Critical:
		c.log.Error(a.Summary, fields...)
	default:
		c.log.Warn(a.Summary, fields...)
	}
	return nil
}
