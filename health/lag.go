package health

import "time"

// lagTracker judges raft index lag across checks. A member's status and the leader's
// are answers taken at different moments, so under load their raw difference is mostly
// the entries committed between the two answers. The tracker measures the rate entries
// are committed at from the leader's progress since the previous check, subtracts what
// that rate explains in the longest time that can separate the two answers, and reports
// a member only when what remains exceeds the threshold in LagChecks (two) checks in a
// row.
type lagTracker struct {
	prev map[ID]lagSample // each member's latest raft index and when
	last map[ID]lagObs    // each member's lag behind the reference at the previous check
}

type lagSample struct {
	index uint64
	at    time.Time
}

// lagObs is a member's raw lag and the longest time that could separate its answer from
// the reference's, kept so that the previous check can be judged by the rate measured
// since (the first check of all has no rate of its own).
type lagObs struct {
	raw    float64
	window float64
}

// observe sets r.ApplyRate and returns the lag, in entries beyond what the apply rate
// explains, of each member whose excess lag exceeded the threshold in this check and in
// the previous one, both judged by the rate measured between them. It must be called
// with r.Leader set and the Checker's lock held.
func (t *lagTracker) observe(r *Report, threshold uint64) map[ID]uint64 {
	// The reference is the leader, or the most advanced member when there is none; the
	// apply rate is its progress since the previous check (a follower catching up
	// progresses faster than the cluster commits).
	var ref *MemberStatus
	for i := range r.Members {
		m := &r.Members[i]
		if m.Reachable && (m.Member.ID == r.Leader.ID || (r.Leader.ID == 0 && (ref == nil || m.RaftIndex > ref.RaftIndex))) {
			ref = m
		}
	}
	rate, known := 0.0, false
	if ref != nil {
		if p, ok := t.prev[ref.Member.ID]; ok {
			if dt := ref.at().Sub(p.at).Seconds(); dt > 0 && ref.RaftIndex >= p.index {
				rate, known = float64(ref.RaftIndex-p.index)/dt, true
			}
		}
	}
	r.ApplyRate = rate

	out := map[ID]uint64{}
	last := map[ID]lagObs{}
	if ref != nil {
		for i := range r.Members {
			m := &r.Members[i]
			if !m.Reachable || m == ref || m.RaftIndex >= ref.RaftIndex {
				continue
			}
			// The reference's answer can postdate this member's by at most this long.
			obs := lagObs{raw: float64(ref.RaftIndex - m.RaftIndex), window: max(ref.received.Sub(m.sent), 0).Seconds()}
			last[m.Member.ID] = obs
			prev, seen := t.last[m.Member.ID]
			if !known || !seen {
				continue
			}
			excess := obs.raw - rate*obs.window
			if excess > float64(threshold) && prev.raw-rate*prev.window > float64(threshold) {
				out[m.Member.ID] = uint64(excess)
			}
		}
	}
	t.last = last

	next := make(map[ID]lagSample, len(r.Members))
	for _, m := range r.Members {
		p, seen := t.prev[m.Member.ID]
		switch {
		case m.Reachable && (!seen || m.at().After(p.at)):
			next[m.Member.ID] = lagSample{index: m.RaftIndex, at: m.at()}
		case seen:
			next[m.Member.ID] = p
		}
	}
	t.prev = next
	return out
}

// at is the middle of the status request: when the answer was most likely taken.
func (m *MemberStatus) at() time.Time { return m.sent.Add(m.received.Sub(m.sent) / 2) }
