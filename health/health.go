package health

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-monitor/etcd-monitor/internal/memberhttp"
)

// Checker checks a cluster's health. Use New.
type Checker struct {
	opts   options
	src    StatusSource
	ownSrc io.Closer // the source New made, closed with the Checker
	http   *memberhttp.Clients

	mu          sync.Mutex
	lastMembers []Member
	lastLeader  ID
	history     []LeaderChange
	lag         lagTracker

	stats stats
}

// New returns a Checker of the cluster cli belongs to. cli is used for the membership
// list, alarms and per-member status requests; it stays the caller's to close.
func New(cli *clientv3.Client, opts ...Option) (*Checker, error) {
	o := defaults()
	for i, opt := range opts {
		if opt == nil {
			return nil, fmt.Errorf("%w: option %d is nil", ErrInvalidArgument, i)
		}
		opt.apply(&o)
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	src := o.source
	var own io.Closer
	if src == nil {
		if cli == nil {
			return nil, fmt.Errorf("%w: nil client and no WithSource", ErrInvalidArgument)
		}
		es := NewEtcdSource(cli)
		src, own = es, es.(io.Closer)
	}
	return &Checker{opts: o, src: src, ownSrc: own, http: memberhttp.NewClients(o.httpClient)}, nil
}

// Close closes the connections the Checker keeps to the members between checks: the
// gRPC connection for each member's status (unless WithSource gave the source) and the
// idle HTTP connections to /livez and /readyz (unless WithHTTPClient gave the client).
// A request in flight keeps its connection until it ends; a Check after Close (or one
// it overlaps) works, keeping none. It is idempotent.
func (c *Checker) Close() error {
	c.http.Close()
	if c.ownSrc != nil {
		return c.ownSrc.Close()
	}
	return nil
}

// History returns the leader changes seen so far, oldest first (at most HistorySize).
func (c *Checker) History() []LeaderChange {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.history)
}

// Check probes every member in parallel and returns the report. It fails only when the
// membership cannot be read and none is known from an earlier check; a member that cannot
// be reached is described in its entry instead.
func (c *Checker) Check(ctx context.Context) (_ *Report, err error) {
	start := time.Now()
	defer func() { c.stats.observe(time.Since(start), err != nil) }()
	members, err := c.members(ctx)
	if err != nil {
		return nil, err
	}

	r := &Report{Time: start, Members: make([]MemberStatus, len(members))}
	var wg sync.WaitGroup
	for i, m := range members {
		wg.Go(func() { r.Members[i] = c.probe(ctx, m) })
	}
	var alarms []Alarm
	var alarmsErr error
	wg.Go(func() {
		actx, cancel := context.WithTimeout(ctx, c.opts.timeout)
		defer cancel()
		alarms, alarmsErr = c.src.Alarms(actx)
	})
	wg.Wait()

	r.Alarms = alarms
	if r.Alarms == nil {
		r.Alarms = []Alarm{}
	}
	if alarmsErr != nil {
		r.AlarmsError = alarmsErr.Error()
	}
	derive(r, func(r *Report) map[ID]uint64 {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.lag.observe(r, c.opts.lagThreshold)
	})
	c.record(r)
	r.Duration = time.Since(start)
	return r, nil
}

func (c *Checker) members(ctx context.Context) ([]Member, error) {
	mctx, cancel := context.WithTimeout(ctx, c.opts.timeout)
	defer cancel()
	members, err := c.src.Members(mctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		if c.lastMembers == nil {
			return nil, fmt.Errorf("%w: %w", ErrMembers, err)
		}
		c.opts.logger.Warn("member list failed, using the last known", zap.Error(err))
		return slices.Clone(c.lastMembers), nil
	}
	for i := range members {
		if ep, ok := c.opts.endpoints[members[i].ID.Hex()]; ok {
			members[i].Endpoint = ep
		} else if ep, ok := c.opts.endpoints[members[i].Name]; ok && members[i].Name != "" {
			members[i].Endpoint = ep
		}
	}
	// The /livez and /readyz connections of members that left are closed at once.
	bases := make([]string, 0, len(members))
	for _, m := range members {
		if base, _ := memberhttp.Base(m.ClientURLs); base != "" {
			bases = append(bases, base)
		}
	}
	c.http.Keep(bases)
	// By name, then ID: names may be empty (a member added but not started) or shared.
	slices.SortFunc(members, func(a, b Member) int {
		if n := strings.Compare(a.Name, b.Name); n != 0 {
			return n
		}
		return cmp.Compare(a.ID, b.ID)
	})
	c.lastMembers = slices.Clone(members)
	return members, nil
}

func (c *Checker) probe(ctx context.Context, m Member) MemberStatus {
	ctx, cancel := context.WithTimeout(ctx, c.opts.timeout)
	defer cancel()
	ms := MemberStatus{Member: m}
	ms.sent = time.Now()
	st, err := c.src.Status(ctx, m)
	ms.received = time.Now()
	ms.Latency = ms.received.Sub(ms.sent)
	if err != nil {
		ms.Err = err
		ms.Error = err.Error()
	} else {
		ms.Status = st
		ms.Reachable = true
	}
	if base, unix := memberhttp.Base(m.ClientURLs); base != "" {
		// One after the other, on one kept-alive connection per member rather than two:
		// each answer takes a round trip on a healthy member, and a member too slow to
		// answer /livez within the timeout gets the timeout as its /readyz error too.
		ms.Livez = c.httpProbe(ctx, base+"/livez", unix)
		ms.Readyz = c.httpProbe(ctx, base+"/readyz", unix)
	}
	return ms
}

// httpProbe asks a member's health endpoint. It reads the whole of a short answer, so
// that the connection is kept alive for the next check.
func (c *Checker) httpProbe(ctx context.Context, url string, unix bool) Probe {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return Probe{Error: err.Error()}
	}
	var p Probe
	err = c.http.Do(req, unix, func(resp *http.Response) error {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxProbeBody))
		if resp.StatusCode == http.StatusNotFound {
			p = Probe{StatusCode: resp.StatusCode}
			return nil
		}
		p = Probe{Served: true, StatusCode: resp.StatusCode, OK: resp.StatusCode == http.StatusOK}
		if !p.OK {
			p.Error = probeError(body)
		}
		return nil
	})
	if err != nil {
		return Probe{Error: err.Error()}
	}
	return p
}

const (
	// maxProbeBody is how much of a failing /livez or /readyz answer is read.
	maxProbeBody = 4096
	// MaxProbeError bounds Probe.Error, in bytes.
	MaxProbeError = 200
)

// probeError keeps what a person needs from a failing health endpoint's body: etcd
// answers with one line per check ("[-]serializable_read failed: ..."), so the first
// failing check, or else the first line, printable characters only, at most
// MaxProbeError bytes (cut on a rune boundary, "…" marking the cut).
func probeError(body []byte) string {
	lines := strings.Split(strings.ToValidUTF8(string(body), "\uFFFD"), "\n")
	line := ""
	for _, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "[-]") {
			line = l
			break
		}
	}
	if line == "" {
		for _, l := range lines {
			if strings.TrimSpace(l) != "" {
				line = l
				break
			}
		}
	}
	line = strings.TrimSpace(strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return ' '
	}, line))
	if len(line) <= MaxProbeError {
		return line
	}
	cut := MaxProbeError - len("…")
	for cut > 0 && !utf8.RuneStart(line[cut]) {
		cut--
	}
	return line[:cut] + "…"
}

// record appends a leader change when the report names a different leader than the
// last one seen, and copies the history into the report.
func (c *Checker) record(r *Report) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if id := r.Leader.ID; id != 0 && id != c.lastLeader {
		c.history = append(c.history, LeaderChange{Time: r.Time, From: c.lastLeader, To: id, Term: r.Leader.Term})
		if n := len(c.history) - HistorySize; n > 0 {
			c.history = slices.Delete(c.history, 0, n)
		}
		c.lastLeader = id
	}
	r.LeaderHistory = slices.Clone(c.history)
	if r.LeaderHistory == nil {
		r.LeaderHistory = []LeaderChange{}
	}
}

// derive fills the cluster-wide fields of r from its member entries.
// lag is called once the leader is known and returns the members that lag.
func derive(r *Report, lag func(*Report) map[ID]uint64) {
	names := map[ID]string{}
	var reachable []*MemberStatus
	for i := range r.Members {
		m := &r.Members[i]
		names[m.Member.ID] = m.Name
		if m.Reachable {
			reachable = append(reachable, m)
		}
	}

	// Cluster ID: the most common among reachable members.
	clusterIDs := map[ID]int{}
	for _, m := range reachable {
		clusterIDs[m.ClusterID]++
	}
	best := 0
	for id, n := range clusterIDs {
		if n > best || (n == best && id < r.ClusterID) {
			r.ClusterID, best = id, n
		}
	}

	// Quorum over voting members.
	for _, m := range r.Members {
		if m.Member.IsLearner {
			continue
		}
		r.Quorum.Voters++
		if m.Reachable && m.Status.Leader != 0 {
			r.Quorum.Healthy++
		}
	}
	r.Quorum.Size = r.Quorum.Voters/2 + 1
	r.Quorum.HasQuorum = r.Quorum.Voters > 0 && r.Quorum.Healthy >= r.Quorum.Size

	// Leader: the most named leader in the highest term seen.
	var maxTerm uint64
	for _, m := range reachable {
		if m.Leader != 0 && m.RaftTerm > maxTerm {
			maxTerm = m.RaftTerm
		}
	}
	votes := map[ID]int{}
	for _, m := range reachable {
		if m.Leader != 0 && m.RaftTerm == maxTerm {
			votes[m.Leader]++
		}
	}
	best = 0
	for id, n := range votes {
		if n > best || (n == best && id < r.Leader.ID) {
			r.Leader.ID, best = id, n
		}
	}
	if r.Leader.ID != 0 {
		r.Leader.Term = maxTerm
		r.Leader.Name = names[r.Leader.ID]
		r.Leader.Agreed = true
		for _, m := range reachable {
			if m.Leader != r.Leader.ID {
				r.Leader.Agreed = false
			}
		}
	}

	// Split brain: different leaders within one term, or different clusters.
	byTerm := map[uint64]map[ID][]ID{}
	for _, m := range reachable {
		if m.Leader == 0 {
			continue
		}
		if byTerm[m.RaftTerm] == nil {
			byTerm[m.RaftTerm] = map[ID][]ID{}
		}
		byTerm[m.RaftTerm][m.Leader] = append(byTerm[m.RaftTerm][m.Leader], m.Member.ID)
	}
	terms := make([]uint64, 0, len(byTerm))
	for t := range byTerm {
		terms = append(terms, t)
	}
	slices.Sort(terms)
	for _, t := range terms {
		if len(byTerm[t]) > 1 {
			r.SplitBrain = SplitBrain{Detected: true, Term: t, Leaders: byTerm[t],
				Reason: fmt.Sprintf("%d members name %d different leaders in term %d", countClaims(byTerm[t]), len(byTerm[t]), t)}
			break
		}
	}
	if len(clusterIDs) > 1 {
		ids := make([]ID, 0, len(clusterIDs))
		for id := range clusterIDs {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		r.SplitBrain.Detected = true
		r.SplitBrain.ClusterIDs = ids
		reason := fmt.Sprintf("members report %d different cluster IDs", len(ids))
		if r.SplitBrain.Reason != "" {
			reason = r.SplitBrain.Reason + "; " + reason
		}
		r.SplitBrain.Reason = reason
	}

	// Partition: unreachable, leaderless while a leader exists, or lagging.
	lagging := lag(r)
	for _, m := range r.Members {
		pm := PartitionedMember{ID: m.Member.ID, Name: m.Name}
		switch {
		case !m.Reachable:
			pm.Reason = ReasonUnreachable
		case m.Status.Leader == 0 && r.Leader.ID != 0:
			pm.Reason = ReasonNoLeader
		case lagging[m.Member.ID] > 0:
			pm.Reason, pm.Lag = ReasonRaftLag, lagging[m.Member.ID]
		default:
			continue
		}
		r.Partition.Members = append(r.Partition.Members, pm)
	}
	r.Partition.Detected = len(r.Partition.Members) > 0

	// Revision spread among reachable members.
	if len(reachable) > 0 {
		lo, hi := reachable[0].Revision, reachable[0].Revision
		for _, m := range reachable[1:] {
			lo, hi = min(lo, m.Revision), max(hi, m.Revision)
		}
		r.RevisionSpread = hi - lo
	}

	r.Healthy = r.Quorum.HasQuorum && r.Leader.ID != 0 && r.Leader.Agreed &&
		!r.SplitBrain.Detected && !r.Partition.Detected && len(r.Alarms) == 0
}

func countClaims(m map[ID][]ID) int {
	n := 0
	for _, v := range m {
		n += len(v)
	}
	return n
}
