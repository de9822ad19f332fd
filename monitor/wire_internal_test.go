package monitor

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/etcd-monitor/etcd-monitor/health"
)

// A member that answers /readyz with a 4 KB HTML error page gets one short line in the
// members table, not the page.
func TestProbeErrorIsShortAndPlain(t *testing.T) {
	page := "503 Service Unavailable: <html>\n<head><title>down</title></head>\r\n<body>\t" + strings.Repeat("é", 3000) + "</body></html>\x00\x1b[31m"
	rep := &health.Report{Members: []health.MemberStatus{{
		Member:  health.Member{ID: 1, Name: "m1"},
		Readyz:  health.Probe{Served: true, StatusCode: 503, Error: page},
		Livez:   health.Probe{Served: true, OK: true, StatusCode: 200},
		Error:   strings.Repeat("x\n", 4096),
		Latency: 1500 * time.Microsecond,
	}}}
	m := membersOf(rep)[0]
	assert.LessOrEqual(t, len(m.Readyz.Error), maxProbeError)
	assert.True(t, strings.HasPrefix(m.Readyz.Error, "503 Service Unavailable: <html> <head><title>down</title></head> <body> éé"), m.Readyz.Error)
	assert.True(t, strings.HasSuffix(m.Readyz.Error, "…"))
	assert.NotContains(t, m.Readyz.Error, "\n")
	assert.NotContains(t, m.Readyz.Error, "\x00")
	assert.True(t, strings.ToValidUTF8(m.Readyz.Error, "?") == m.Readyz.Error, "cut on a rune boundary")
	assert.LessOrEqual(t, len(m.Error), 4*maxProbeError)
	assert.Equal(t, 0.0015, m.LatencySeconds)
	assert.Equal(t, "short and plain", plain("short \n and\tplain", 100))
	assert.Equal(t, []string{}, m.Alarms)
}

func TestMembersShowLeaderLagAndAlarms(t *testing.T) {
	rep := &health.Report{
		Leader: health.Leader{ID: 1},
		Members: []health.MemberStatus{
			{Member: health.Member{ID: 1}, Reachable: true, Status: health.Status{RaftIndex: 100}},
			{Member: health.Member{ID: 2}, Reachable: true, Status: health.Status{RaftIndex: 90, IsLearner: true}},
			{Member: health.Member{ID: 3}},
		},
		Alarms: []health.Alarm{{MemberID: 2, Type: "NOSPACE"}},
	}
	ms := membersOf(rep)
	assert.True(t, ms[0].IsLeader)
	assert.False(t, ms[1].IsLeader)
	assert.EqualValues(t, 10, ms[1].RaftIndexLag)
	assert.True(t, ms[1].IsLearner, "a learner by its own status")
	assert.Equal(t, []string{"NOSPACE"}, ms[1].Alarms)
	assert.Zero(t, ms[2].RaftIndexLag, "unreachable: no lag known")
}
