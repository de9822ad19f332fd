package config_test

import (
	"maps"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/config"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
)

// TestFaultCluster: a Store keeps answering while its member is cut off and through a
// leader stop, and converges after compaction, its callbacks seeing exactly the
// differences.
func TestFaultCluster(t *testing.T) {
	c := etcdtest.NewCluster(t, 3)
	ctx := etcdtest.Context(t, 60*time.Second)
	p := "/cfg/"
	lead := c.Leader()
	i, w := (lead+1)%3, (lead+2)%3
	writer := c.Client(w)
	for _, k := range []string{"a", "b", "c"} {
		_, err := writer.Put(ctx, p+k, `"v0"`)
		require.NoError(t, err)
	}
	s := newStore(t, ctx, c.Client(i), p)
	state := map[string]string{}
	var mu = make(chan struct{}, 1)
	mu <- struct{}{}
	stop, err := s.Watch("", func(ch config.Change) {
		<-mu
		if ch.New == nil {
			delete(state, ch.Key)
		} else {
			state[ch.Key] = string(ch.New)
		}
		mu <- struct{}{}
	})
	require.NoError(t, err)
	defer stop()
	snapshot := func() map[string]string { <-mu; defer func() { mu <- struct{}{} }(); return maps.Clone(state) }
	require.EventuallyWithT(t, func(ct *assert.CollectT) { assert.Len(ct, s.Keys(""), 3) }, 10*time.Second, 10*time.Millisecond)
	state = map[string]string{"a": `"v0"`, "b": `"v0"`, "c": `"v0"`}

	c.PauseConnections(i)
	require.EventuallyWithT(t, func(ct *assert.CollectT) { assert.True(ct, s.Stale(), "stale while cut off") }, 10*time.Second, 10*time.Millisecond)
	_, err = writer.Delete(ctx, p+"a")
	require.NoError(t, err)
	_, err = writer.Put(ctx, p+"b", `"v1"`)
	require.NoError(t, err)
	resp, err := writer.Put(ctx, p+"d", `"v1"`)
	require.NoError(t, err)
	c.Compact(ctx, resp.Header.Revision)
	v, err := s.String("a")
	require.NoError(t, err, "answers from memory while cut off")
	assert.Equal(t, "v0", v)
	c.ResumeConnections(i)

	want := map[string]string{"b": `"v1"`, "c": `"v0"`, "d": `"v1"`}
	require.EventuallyWithT(t, func(ct *assert.CollectT) { assert.Equal(ct, want, snapshot()) }, 10*time.Second, 10*time.Millisecond)
	assert.Equal(t, []string{"b", "c", "d"}, s.Keys(""))

	// Leader stop: getters answer throughout; a write after the election arrives.
	stopped := c.StopLeader()
	v, err = s.String("b")
	require.NoError(t, err)
	assert.Equal(t, "v1", v)
	cli := c.ClusterClient()
	_, err = cli.Put(ctx, p+"e", `5`)
	require.NoError(t, err)
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		n, err := s.Int("e")
		assert.NoError(ct, err)
		assert.Equal(ct, 5, n)
	}, 10*time.Second, 10*time.Millisecond)
	c.RestartMember(stopped)
}
