package election

import (
	"errors"

	"github.com/etcd-monitor/etcd-monitor/internal/ownership"
)

var (
	// ErrNotLeader is returned by Resign and Do when the candidate does not (or no
	// longer) lead.
	ErrNotLeader = errors.New("election: not leader")
	// ErrNoLeader is returned by Leader when nobody leads.
	ErrNoLeader = errors.New("election: no leader")
	// ErrLost is what Err returns after leadership was lost; it wraps the cause.
	ErrLost = errors.New("election: leadership lost")
	// ErrSessionLost reports that the candidate's lease expired, was revoked, or could not
	// be renewed for long enough that etcd may have expired it.
	ErrSessionLost = ownership.ErrSessionLost
	// ErrBusy is returned by Campaign while another Campaign of the same candidate runs.
	ErrBusy = errors.New("election: campaign already in progress")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("election: closed")
	// ErrInvalidArgument reports a bad argument or option.
	ErrInvalidArgument = errors.New("election: invalid argument")
)

// vocab names the errors of our claim (internal/ownership) in this package's terms.
var vocab = &ownership.Vocab{Pkg: "election", NotHeld: ErrNotLeader, Lost: ErrLost, Closed: ErrClosed, Invalid: ErrInvalidArgument, Busy: ErrBusy}
