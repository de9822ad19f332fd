package health

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-monitor/etcd-monitor/internal/memberhttp"
)

// Member is one entry of the cluster's membership list.
type Member struct {
	ID         ID       `json:"id"`
	Name       string   `json:"name"`
	PeerURLs   []string `json:"peerURLs"`
	ClientURLs []string `json:"clientURLs"`
	// Endpoint is the gRPC endpoint the member is probed on: its first client URL unless
	// WithEndpoints maps its name elsewhere.
	Endpoint  string `json:"endpoint"`
	IsLearner bool   `json:"isLearner"`
}

// Status is one member's own view of itself and of the cluster.
type Status struct {
	ClusterID        ID       `json:"clusterID"`
	MemberID         ID       `json:"memberID"`
	Version          string   `json:"version"`
	Leader           ID       `json:"leader"`
	RaftTerm         uint64   `json:"raftTerm"`
	RaftIndex        uint64   `json:"raftIndex"`
	RaftAppliedIndex uint64   `json:"raftAppliedIndex"`
	Revision         int64    `json:"revision"`
	DBSize           int64    `json:"dbSize"`
	DBSizeInUse      int64    `json:"dbSizeInUse"`
	DBSizeQuota      int64    `json:"dbSizeQuota"`
	IsLearner        bool     `json:"statusIsLearner"`
	Errors           []string `json:"errors,omitempty"`
}

// Alarm is an alarm raised by a member.
type Alarm struct {
	MemberID ID `json:"memberID"`
	// Type is etcd's alarm name: "NOSPACE" or "CORRUPT".
	Type string `json:"type"`
}

// StatusSource is where a Checker reads the cluster from. The default, NewEtcdSource,
// asks etcd; tests and proxies may supply their own, for example to describe states a
// real cluster cannot be driven into.
type StatusSource interface {
	// Members returns the membership list.
	Members(ctx context.Context) ([]Member, error)
	// Status asks one member for its status.
	Status(ctx context.Context, m Member) (Status, error)
	// Alarms returns the cluster's active alarms.
	Alarms(ctx context.Context) ([]Alarm, error)
}

// etcdSource reads a cluster through a client.
type etcdSource struct {
	cli   *clientv3.Client
	conns *memberhttp.Share // the members' connections, shared with metrics
}

// NewEtcdSource returns the StatusSource that asks etcd through cli: a serializable
// MemberList, Status on each member's endpoint, and AlarmList. It keeps a connection to
// each member between Status calls, shared with the metrics.Collector of the same cli;
// the source also implements io.Closer, which closes them when no other user is left
// (closing cli does too). A Checker closes the source it made itself in Close.
func NewEtcdSource(cli *clientv3.Client) StatusSource {
	return &etcdSource{cli: cli, conns: memberhttp.ConnsOf(cli)}
}

// Close ends the source's use of the member connections; a Status after it keeps no
// connection. It is idempotent.
func (s *etcdSource) Close() error { return s.conns.Close() }

func (s *etcdSource) Members(ctx context.Context) ([]Member, error) {
	resp, err := s.cli.MemberList(ctx, clientv3.WithSerializable())
	if err != nil {
		return nil, err
	}
	out := make([]Member, 0, len(resp.Members))
	ids := make([]uint64, 0, len(resp.Members))
	for _, m := range resp.Members {
		ids = append(ids, m.ID)
		mem := Member{ID: ID(m.ID), Name: m.Name, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs, IsLearner: m.IsLearner}
		if len(m.ClientURLs) > 0 {
			mem.Endpoint = m.ClientURLs[0]
		}
		out = append(out, mem)
	}
	s.conns.Keep(ids)
	return out, nil
}

func (s *etcdSource) Status(ctx context.Context, m Member) (Status, error) {
	if m.Endpoint == "" {
		return Status{}, fmt.Errorf("%w: %s", ErrNoEndpoint, m.Name)
	}
	mc, _, err := s.conns.Get(uint64(m.ID), m.Endpoint)
	if err != nil {
		return Status{}, fmt.Errorf("failed to dial endpoint %s with maintenance client: %w", m.Endpoint, err)
	}
	// What cli.Status does, through the kept connection instead of a new one.
	resp, err := clientv3.NewMaintenanceFromMaintenanceClient(clientv3.RetryMaintenanceClient(s.cli, mc.ClientConn()), s.cli).
		Status(ctx, m.Endpoint)
	mc.Release(err != nil)
	if err != nil {
		return Status{}, err
	}
	st := Status{
		Version:          resp.Version,
		Leader:           ID(resp.Leader),
		RaftTerm:         resp.RaftTerm,
		RaftIndex:        resp.RaftIndex,
		RaftAppliedIndex: resp.RaftAppliedIndex,
		DBSize:           resp.DbSize,
		DBSizeInUse:      resp.DbSizeInUse,
		DBSizeQuota:      resp.DbSizeQuota,
		IsLearner:        resp.IsLearner,
		Errors:           resp.Errors,
	}
	if resp.Header != nil {
		st.ClusterID = ID(resp.Header.ClusterId)
		st.MemberID = ID(resp.Header.MemberId)
		st.Revision = resp.Header.Revision
	}
	return st, nil
}

func (s *etcdSource) Alarms(ctx context.Context) ([]Alarm, error) {
	resp, err := s.cli.AlarmList(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Alarm, 0, len(resp.Alarms))
	for _, a := range resp.Alarms {
		out = append(out, Alarm{MemberID: ID(a.MemberID), Type: a.Alarm.String()})
	}
	return out, nil
}
