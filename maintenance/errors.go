package maintenance

import "errors"

var (
	// ErrInvalidArgument means an argument or option is out of range; the wrapping error
	// names it.
	ErrInvalidArgument = errors.New("maintenance: invalid argument")
	// ErrUnhealthy means the cluster is not healthy enough for the operation: no quorum,
	// no agreed leader, split brain, a partitioned member or a CORRUPT alarm. The wrapping
	// error says which.
	ErrUnhealthy = errors.New("maintenance: cluster unhealthy")
	// ErrQuorum means the operation would leave the cluster without a quorum (or, for a
	// defragmentation, without a quorum while a member is paused).
	ErrQuorum = errors.New("maintenance: would cost quorum")
	// ErrAborted means a multi-member operation stopped part-way because the cluster
	// degraded or a member failed; the report returned with it says how far it got.
	ErrAborted = errors.New("maintenance: aborted")
	// ErrOverQuota means a NOSPACE alarm was not disarmed because a member's database is
	// still too close to its quota; compact and defragment first.
	ErrOverQuota = errors.New("maintenance: database still over quota")
	// ErrNoMark means no revision mark is old enough for a compaction by age; see Mark.
	ErrNoMark = errors.New("maintenance: no revision mark old enough")
	// ErrVerify means a snapshot failed verification: its SHA-256 trailer does not match
	// or etcd's integrity check rejects it.
	ErrVerify = errors.New("maintenance: snapshot verification failed")
	// ErrBusy means a defragmentation is already running through the same Maintainer:
	// two at once would pause two members at once.
	ErrBusy = errors.New("maintenance: a defragmentation is already running")
	// ErrNotFound means no member has the given ID.
	ErrNotFound = errors.New("maintenance: member not found")
	// ErrNotCaughtUp means a learner did not catch up with the leader in time to be
	// promoted.
	ErrNotCaughtUp = errors.New("maintenance: learner not caught up")
)
