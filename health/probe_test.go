package health_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/health"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
)

// A member's failing /livez or /readyz body ends up in Probe.Error, which the API
// serves in /cluster/members: it is kept short and plain — the first failing check (or
// first line), printable characters only, at most MaxProbeError bytes — whatever the
// member sends.
func TestProbeErrorShortAndPlain(t *testing.T) {
	cli := etcdtest.Client(t)
	for name, tc := range map[string]struct {
		body string
		want string
	}{
		"etcd's checks": {
			body: "[+]data_corruption ok\n[-]serializable_read failed: etcdserver: leader changed\n[+]linearizable_read ok\nreadyz check failed\n",
			want: "[-]serializable_read failed: etcdserver: leader changed",
		},
		"first line": {body: "\n\n  service unavailable \r\nsecond line\n", want: "service unavailable"},
		"control characters": {
			body: "bad\x1b[31m red\x00\ttab\xff\n",
			want: "bad [31m red  tab\uFFFD",
		},
		"huge": {body: strings.Repeat("é", 4000)},
	} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = w.Write([]byte(tc.body))
			}))
			t.Cleanup(srv.Close)
			src := extra{StatusSource: health.NewEtcdSource(cli), members: []health.Member{
				{ID: 0xbad, Name: "sick", ClientURLs: []string{srv.URL}},
			}}
			ch, err := health.New(cli, health.WithSource(src), health.WithTimeout(2*time.Second))
			require.NoError(t, err)
			t.Cleanup(func() { ch.Close() })
			r := check(t, ch)
			m, ok := r.Member(0xbad)
			require.True(t, ok)
			for _, p := range []health.Probe{m.Livez, m.Readyz} {
				assert.True(t, p.Served)
				assert.False(t, p.OK)
				assert.Equal(t, http.StatusServiceUnavailable, p.StatusCode)
				assert.LessOrEqual(t, len(p.Error), health.MaxProbeError)
				assert.True(t, utf8.ValidString(p.Error))
				assert.NotContains(t, p.Error, "\n")
				for _, r := range p.Error {
					assert.True(t, unicode.IsPrint(r), "%q", r)
				}
				if tc.want != "" {
					assert.Equal(t, tc.want, p.Error)
				} else {
					assert.True(t, strings.HasSuffix(p.Error, "…"), "a cut is marked")
					assert.True(t, strings.HasPrefix(p.Error, "éé"))
				}
			}
		})
	}
}

// Stats count every check, failed ones too, in cumulative duration buckets.
func TestCheckStats(t *testing.T) {
	cli := etcdtest.Client(t)
	ch, err := health.New(cli)
	require.NoError(t, err)
	t.Cleanup(func() { ch.Close() })
	s := ch.Stats()
	assert.Zero(t, s.Count)
	require.NotEmpty(t, s.Buckets)
	for _, b := range s.Buckets {
		assert.Zero(t, b.Count)
	}
	r1, r2 := check(t, ch), check(t, ch)
	s = ch.Stats()
	assert.Equal(t, uint64(2), s.Count)
	assert.Zero(t, s.Errors)
	assert.GreaterOrEqual(t, s.Sum, r1.Duration+r2.Duration)
	for i, b := range s.Buckets {
		want := uint64(0)
		for _, d := range []time.Duration{r1.Duration, r2.Duration} {
			if d <= b.UpperBound {
				want++
			}
		}
		// Stats time the whole call, a hair longer than Report.Duration.
		assert.LessOrEqual(t, b.Count, want, "bucket %v", b.UpperBound)
		if i > 0 {
			assert.GreaterOrEqual(t, b.Count, s.Buckets[i-1].Count, "cumulative")
			assert.Greater(t, b.UpperBound, s.Buckets[i-1].UpperBound)
		}
	}
	assert.Equal(t, uint64(2), s.Buckets[len(s.Buckets)-1].Count, "a check of the shared node takes well under the last bound")

	bad, err := health.New(nil, health.WithSource(failing{}))
	require.NoError(t, err)
	t.Cleanup(func() { bad.Close() })
	_, err = bad.Check(etcdtest.Context(t, 5*time.Second))
	require.Error(t, err)
	s = bad.Stats()
	assert.Equal(t, uint64(1), s.Count)
	assert.Equal(t, uint64(1), s.Errors)
}
