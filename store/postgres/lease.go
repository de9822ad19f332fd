package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/etcd-monitor/etcd-monitor/store"
)

// Lease is a named lease row in PostgreSQL that one holder at a time owns until it
// expires: the fenced lease that picks the one daemon of several that evaluates alerts
// and notifies. Use Store.NewLease.
//
// Why a row and not an advisory lock: a session advisory lock lives as long as its
// connection, and a holder cut off from PostgreSQL keeps it until the server notices
// the dead connection (TCP keepalive, minutes), far past the two health intervals a
// standby has to take over; it also carries no token to fence a deposed holder's
// writes, and breaks behind a transaction-pooling proxy. The row has an expiry set by
// PostgreSQL's clock alone (no clock of a daemon is compared with another's), and a
// token that grows by one each time the lease changes hands, which fenced writes
// check in their own transaction.
//
// The holder's own view is conservative: Held is true only until the moment the
// renewal was sent plus the TTL, measured on this process's monotonic clock, which is
// never later than the expiry PostgreSQL recorded.
type Lease struct {
	s            *Store
	name, holder string
	ttl          time.Duration

	op       sync.Mutex // serialises Acquire, Renew and Release
	mu       sync.Mutex // guards token and deadline; never held across a round trip
	token    int64
	deadline time.Time // local: when our view of holding ends
}

// LeaseInfo is the lease row as PostgreSQL has it.
type LeaseInfo struct {
	Name     string    `json:"name"`
	Holder   string    `json:"holder"`
	Token    int64     `json:"token"`
	Expires  time.Time `json:"expires"`
	Acquired time.Time `json:"acquired"`
	// Expired is true when the lease has expired by PostgreSQL's clock: nobody holds it.
	Expired bool `json:"expired"`
}

// NewLease returns the lease name for holder (an ID unique to this process: two
// processes with one ID would share the lease). ttl is how long a holder keeps it
// without renewing, at least a second.
func (s *Store) NewLease(name, holder string, ttl time.Duration) (*Lease, error) {
	switch {
	case name == "":
		return nil, fmt.Errorf("%w: empty lease name", ErrInvalidArgument)
	case holder == "":
		return nil, fmt.Errorf("%w: empty lease holder", ErrInvalidArgument)
	case ttl < time.Second:
		return nil, fmt.Errorf("%w: lease TTL %v is under a second", ErrInvalidArgument, ttl)
	}
	return &Lease{s: s, name: name, holder: holder, ttl: ttl}, nil
}

// Name returns the lease's name.
func (l *Lease) Name() string { return l.name }

// Holder returns the holder ID the lease was made for.
func (l *Lease) Holder() string { return l.holder }

// TTL returns the lease's TTL.
func (l *Lease) TTL() time.Duration { return l.ttl }

// Acquire takes the lease when it is free or expired, or renews the holder's term
// while the holder's own view says it holds it, and reports whether the holder has it
// now. Any other take starts a new term with a larger token, also the holder's own
// when its view of its term ended (a renewal applied whose answer was lost), so the
// ended term's fenced writes are refused.
func (l *Lease) Acquire(ctx context.Context) (bool, error) {
	l.op.Lock()
	defer l.op.Unlock()
	l.mu.Lock()
	current := int64(0)
	if l.heldLocked() {
		current = l.token
	}
	l.mu.Unlock()
	sent := time.Now()
	var token int64
	err := l.s.op(ctx, "acquire lease", func(ctx context.Context) error {
		err := l.s.pool.QueryRow(ctx, `INSERT INTO leases (name, holder, token, expires, acquired)
	VALUES ($1, $2, 1, clock_timestamp() + $3::interval, clock_timestamp())
	ON CONFLICT (name) DO UPDATE SET
		token = CASE WHEN leases.holder = excluded.holder AND leases.token = $4 AND leases.expires > clock_timestamp()
			THEN leases.token ELSE leases.token + 1 END,
		acquired = CASE WHEN leases.holder = excluded.holder AND leases.token = $4 AND leases.expires > clock_timestamp()
			THEN leases.acquired ELSE clock_timestamp() END,
		holder = excluded.holder,
		expires = excluded.expires
	WHERE leases.holder = excluded.holder OR leases.expires <= clock_timestamp()
	RETURNING token`, l.name, l.holder, l.ttl, current).Scan(&token)
		if errors.Is(err, pgx.ErrNoRows) {
			token = 0
			return nil
		}
		return err
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		return l.heldLocked(), err
	}
	if token == 0 {
		l.token, l.deadline = 0, time.Time{}
		return false, nil
	}
	l.token, l.deadline = token, sent.Add(l.ttl)
	return true, nil
}

// Renew extends the holder's term without taking the lease from anybody: ErrLeaseLost
// when the holder's term (token) ended.
func (l *Lease) Renew(ctx context.Context) error {
	l.op.Lock()
	defer l.op.Unlock()
	l.mu.Lock()
	token := l.token
	l.mu.Unlock()
	if token == 0 {
		return fmt.Errorf("%w: %q does not hold %q", ErrLeaseLost, l.holder, l.name)
	}
	sent := time.Now()
	var ok bool
	err := l.s.op(ctx, "renew lease", func(ctx context.Context) error {
		tag, err := l.s.pool.Exec(ctx, `UPDATE leases SET expires = clock_timestamp() + $4::interval
	WHERE name = $1 AND holder = $2 AND token = $3 AND expires > clock_timestamp()`, l.name, l.holder, token, l.ttl)
		ok = err == nil && tag.RowsAffected() == 1
		return err
	})
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !ok {
		l.token, l.deadline = 0, time.Time{}
		return fmt.Errorf("%w: %q's term %d of %q ended", ErrLeaseLost, l.holder, token, l.name)
	}
	l.deadline = sent.Add(l.ttl)
	return nil
}

// Release ends the holder's term at once so another holder may take the lease now.
// Releasing a lease not held is not an error.
func (l *Lease) Release(ctx context.Context) error {
	l.op.Lock()
	defer l.op.Unlock()
	l.mu.Lock()
	token := l.token
	l.token, l.deadline = 0, time.Time{}
	l.mu.Unlock()
	if token == 0 {
		return nil
	}
	return l.s.op(ctx, "release lease", func(ctx context.Context) error {
		_, err := l.s.pool.Exec(ctx, `UPDATE leases SET expires = clock_timestamp()
	WHERE name = $1 AND holder = $2 AND token = $3 AND expires > clock_timestamp()`, l.name, l.holder, token)
		return err
	})
}

// Held reports whether the holder has the lease by its own conservative clock, and the
// token of its term (0 when not held).
func (l *Lease) Held() (bool, int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.heldLocked() {
		return false, 0
	}
	return true, l.token
}

// Deadline returns when the holder's own view of its term ends (zero when not held):
// a holder must stop acting as one by then unless it renewed.
func (l *Lease) Deadline() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.heldLocked() {
		return time.Time{}
	}
	return l.deadline
}

func (l *Lease) heldLocked() bool { return l.token != 0 && time.Now().Before(l.deadline) }

// Info reads the lease row; store.ErrNotFound when nobody ever took it.
func (l *Lease) Info(ctx context.Context) (LeaseInfo, error) {
	info := LeaseInfo{Name: l.name}
	err := l.s.op(ctx, "read lease", func(ctx context.Context) error {
		err := l.s.pool.QueryRow(ctx, `SELECT holder, token, expires, acquired, expires <= clock_timestamp() FROM leases WHERE name = $1`,
			l.name).Scan(&info.Holder, &info.Token, &info.Expires, &info.Acquired, &info.Expired)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: lease %q", store.ErrNotFound, l.name)
		}
		return err
	})
	info.Expires, info.Acquired = info.Expires.UTC(), info.Acquired.UTC()
	return info, err
}

// Fenced returns a view of the store for the holder's current term: its writes of
// alert state (PutAlerts, PutGroup, DeleteGroup, AppendNotification, PutSilence,
// DeleteSilence) are made only
// while the lease is still the holder's with this term's token and unexpired by
// PostgreSQL's clock, and fail with ErrFenced otherwise; everything else is the
// store's. ErrLeaseLost when the holder does not hold the lease. Closing the view
// does not close the store.
func (l *Lease) Fenced() (*Fenced, error) {
	held, token := l.Held()
	if !held {
		return nil, fmt.Errorf("%w: %q does not hold %q", ErrLeaseLost, l.holder, l.name)
	}
	return &Fenced{Store: l.s, f: &fence{name: l.name, holder: l.holder, token: token}}, nil
}

// Fenced is a view of a Store whose alert-state writes are fenced by a lease term. Use
// Lease.Fenced.
type Fenced struct {
	*Store
	f *fence
}

var (
	_ store.Store          = (*Fenced)(nil)
	_ store.AlertHistorian = (*Fenced)(nil)
)

// Token returns the term's token.
func (v *Fenced) Token() int64 { return v.f.token }

// PutAlerts implements store.Store, fenced.
func (v *Fenced) PutAlerts(ctx context.Context, put []store.Alert, del []string) error {
	return v.putAlerts(ctx, v.f, put, del)
}

// PutGroup implements store.Store, fenced.
func (v *Fenced) PutGroup(ctx context.Context, g store.Group) error { return v.putGroup(ctx, v.f, g) }

// DeleteGroup implements store.Store, fenced.
func (v *Fenced) DeleteGroup(ctx context.Context, receiver, key string) error {
	return v.deleteGroup(ctx, v.f, receiver, key)
}

// AppendNotification implements store.Store, fenced.
func (v *Fenced) AppendNotification(ctx context.Context, n store.Notification) (store.Notification, error) {
	return v.appendNotification(ctx, v.f, n)
}

// PutSilence implements store.Store, fenced.
func (v *Fenced) PutSilence(ctx context.Context, sil store.Silence) error {
	return v.putSilence(ctx, v.f, sil)
}

// DeleteSilence implements store.Store, fenced.
func (v *Fenced) DeleteSilence(ctx context.Context, id string) error {
	return v.deleteSilence(ctx, v.f, id)
}

// Close does nothing: the store stays open.
func (v *Fenced) Close() error { return nil }
