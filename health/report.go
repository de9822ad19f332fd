package health

import "time"

// Report is the outcome of one Check.
type Report struct {
	Time time.Time `json:"time"`
	// Duration is how long the check took.
	Duration time.Duration `json:"duration"`
	// ClusterID is the cluster ID most reachable members report.
	ClusterID ID             `json:"clusterID"`
	Members   []MemberStatus `json:"members"`
	Quorum    Quorum         `json:"quorum"`
	Leader    Leader         `json:"leader"`
	// SplitBrain is set when reachable members disagree about the leader within one raft
	// term, or about the cluster they belong to.
	SplitBrain SplitBrain `json:"splitBrain"`
	Partition  Partition  `json:"partition"`
	Alarms     []Alarm    `json:"alarms"`
	// AlarmsError is set when the alarm list could not be read.
	AlarmsError string `json:"alarmsError,omitempty"`
	// ApplyRate is how many raft entries per second the cluster committed between this
	// check and the previous one (0 on the first check).
	ApplyRate float64 `json:"applyRate"`
	// RevisionSpread is the largest minus the smallest revision among reachable members.
	RevisionSpread int64 `json:"revisionSpread"`
	// LeaderHistory is the Checker's leader change history (oldest first, at most
	// HistorySize entries) as of this report.
	LeaderHistory []LeaderChange `json:"leaderHistory"`
	// Healthy is true when the cluster has quorum, an agreed leader, no split brain, no
	// partitioned member and no alarm.
	Healthy bool `json:"healthy"`
}

// MemberStatus is one member's entry in a Report.
type MemberStatus struct {
	Member
	Status
	// Reachable is true when the member answered its status request.
	Reachable bool `json:"reachable"`
	// Err is why the member could not be probed; nil when Reachable.
	Err error `json:"-"`
	// Error is Err as text, for JSON.
	Error string `json:"error,omitempty"`
	// Latency is the round trip of the status request.
	Latency time.Duration `json:"latency"`
	Livez   Probe         `json:"livez"`
	Readyz  Probe         `json:"readyz"`

	// sent and received bound when the member's status was taken.
	sent, received time.Time
}

// Probe is the outcome of one HTTP health endpoint (/livez or /readyz) of a member.
type Probe struct {
	// Served is false when the member does not serve the endpoint (404, or no http(s) or
	// unix client URL).
	Served bool `json:"served"`
	// OK is true when the endpoint answered 200.
	OK         bool   `json:"ok"`
	StatusCode int    `json:"statusCode,omitempty"`
	Error      string `json:"error,omitempty"`
}

// Quorum describes the voting members.
type Quorum struct {
	// Size is the number of voting members a quorum needs: voters/2+1.
	Size int `json:"size"`
	// Voters is the number of voting (non-learner) members.
	Voters int `json:"voters"`
	// Healthy is the number of reachable voters that see a leader.
	Healthy   int  `json:"healthy"`
	HasQuorum bool `json:"hasQuorum"`
}

// Leader describes the leader as the members see it.
type Leader struct {
	// ID is the leader named by the most reachable members in the highest term; 0 if none.
	ID   ID     `json:"id"`
	Name string `json:"name,omitempty"`
	Term uint64 `json:"term"`
	// Agreed is true when every reachable member names ID as leader.
	Agreed bool `json:"agreed"`
}

// SplitBrain describes conflicting views of leadership or identity.
type SplitBrain struct {
	Detected bool `json:"detected"`
	// Term is the raft term in which members named different leaders (0 when the
	// conflict is about cluster IDs).
	Term uint64 `json:"term,omitempty"`
	// Leaders maps each claimed leader ID to the members that claim it.
	Leaders map[ID][]ID `json:"leaders,omitempty"`
	// ClusterIDs lists the distinct cluster IDs seen when there is more than one.
	ClusterIDs []ID   `json:"clusterIDs,omitempty"`
	Reason     string `json:"reason,omitempty"`
}

// Partition lists members cut off from the rest of the cluster.
type Partition struct {
	Detected bool                `json:"detected"`
	Members  []PartitionedMember `json:"members,omitempty"`
}

// Reasons a member is reported as partitioned.
const (
	ReasonUnreachable = "unreachable"
	ReasonNoLeader    = "no leader"
	ReasonRaftLag     = "raft index lag"
)

// PartitionedMember is one member of a Partition.
type PartitionedMember struct {
	ID     ID     `json:"id"`
	Name   string `json:"name"`
	Reason string `json:"reason"`
	// Lag is how many raft entries the member trails the leader by, beyond what the
	// apply rate explains in the time between the two answers (for ReasonRaftLag).
	Lag uint64 `json:"lag,omitempty"`
}

// LeaderChange is one entry of the leader history.
type LeaderChange struct {
	Time time.Time `json:"time"`
	// From is the previous leader (0 for none or unknown), To the new one.
	From ID     `json:"from"`
	To   ID     `json:"to"`
	Term uint64 `json:"term"`
}

// Member returns the entry of the member with the given ID.
func (r *Report) Member(id ID) (MemberStatus, bool) {
	for _, m := range r.Members {
		if m.ID == id {
			return m, true
		}
	}
	return MemberStatus{}, false
}

// HasAlarm reports whether an alarm of the given type ("NOSPACE", "CORRUPT") is active.
func (r *Report) HasAlarm(typ string) bool {
	for _, a := range r.Alarms {
		if a.Type == typ {
			return true
		}
	}
	return false
}
