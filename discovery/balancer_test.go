package discovery_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-monitor/etcd-monitor/discovery"
	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
)

// putInstances writes instances straight to etcd (no lease), as a fixture.
func putInstances(ctx context.Context, t testing.TB, cli *clientv3.Client, prefix string, insts ...discovery.Instance) {
	t.Helper()
	for _, in := range insts {
		b := fmt.Sprintf(`{"address":%q,"port":%d,"weight":%d,"drained":%v}`, in.Address, in.Port, in.Weight, in.Drained)
		_, err := cli.Put(ctx, prefix+in.Service+"/"+in.ID, b)
		require.NoError(t, err)
	}
}

func tenInstances(svc string) []discovery.Instance {
	var out []discovery.Instance
	for i := range 10 {
		out = append(out, inst(svc, fmt.Sprintf("i%02d", i), 1000+i))
	}
	return out
}

func balancerFixture(t *testing.T, insts []discovery.Instance) (*discovery.Resolver, *clientv3.Client, string) {
	t.Helper()
	ctx := etcdtest.Context(t, 30*time.Second)
	cli := etcdtest.Client(t)
	p := etcdtest.Prefix(t)
	putInstances(ctx, t, cli, p, insts...)
	res := newResolver(t, ctx, cli, p)
	var want []string
	for _, in := range insts {
		want = append(want, in.ID)
	}
	waitIDs(t, res, insts[0].Service, 2*time.Second, want...)
	return res, cli, p
}

func newBalancer(t *testing.T, res *discovery.Resolver, s discovery.Strategy, opts ...discovery.Option) *discovery.Balancer {
	t.Helper()
	lb, err := discovery.NewBalancer(res, s, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { lb.Close() })
	return lb
}

func pick(t testing.TB, lb *discovery.Balancer, svc string) string {
	t.Helper()
	sel, err := lb.Pick(svc)
	require.NoError(t, err)
	sel.Report(nil)
	return sel.Instance.ID
}

func TestRoundRobinCyclesExactly(t *testing.T) {
	insts := tenInstances("rr")
	res, _, _ := balancerFixture(t, insts)
	lb := newBalancer(t, res, discovery.RoundRobin)
	first := pick(t, lb, "rr")
	off, err := strconv.Atoi(first[1:])
	require.NoError(t, err)
	for i := 1; i < 1000; i++ {
		require.Equal(t, insts[(off+i)%10].ID, pick(t, lb, "rr"), "pick %d", i)
	}
}

func TestRandomSpreads(t *testing.T) {
	res, _, _ := balancerFixture(t, tenInstances("rnd"))
	lb := newBalancer(t, res, discovery.Random)
	counts := map[string]int{}
	for range 10000 {
		counts[pick(t, lb, "rnd")]++
	}
	require.Len(t, counts, 10)
	for id, n := range counts {
		assert.InDelta(t, 1000, n, 200, id)
	}
}

func TestWeightedShares(t *testing.T) {
	var insts []discovery.Instance
	weights := []int{1, 2, 3, 4, 10}
	total := 0
	for i, w := range weights {
		in := inst("wrr", fmt.Sprint("w", i), 1)
		in.Weight = w
		insts = append(insts, in)
		total += w
	}
	res, _, _ := balancerFixture(t, insts)
	lb := newBalancer(t, res, discovery.WeightedRoundRobin)
	counts := map[string]int{}
	const n = 10000
	last, run := "", 0
	for range n {
		id := pick(t, lb, "wrr")
		counts[id]++
		if id == last {
			run++
		} else {
			last, run = id, 1
		}
		assert.LessOrEqual(t, run, 2, "smooth: no long bursts of one instance")
	}
	for i, w := range weights {
		want := float64(n) * float64(w) / float64(total)
		got := float64(counts[fmt.Sprint("w", i)])
		assert.InEpsilon(t, want, got, 0.05, "weight %d: want %.0f picks, got %.0f", w, want, got)
	}
}

func TestConsistentHashRemap(t *testing.T) {
	insts := tenInstances("ch")
	res, cli, p := balancerFixture(t, insts)
	lb := newBalancer(t, res, discovery.ConsistentHash)
	const keys = 10000
	before := make([]string, keys)
	for k := range keys {
		sel, err := lb.PickKey("ch", "user-"+strconv.Itoa(k))
		require.NoError(t, err)
		before[k] = sel.Instance.ID
		sel.Report(nil)
	}
	// Stable: the same key maps to the same instance.
	for k := range 100 {
		sel, err := lb.PickKey("ch", "user-"+strconv.Itoa(k))
		require.NoError(t, err)
		assert.Equal(t, before[k], sel.Instance.ID)
	}
	ctx := etcdtest.Context(t, 10*time.Second)
	_, err := cli.Delete(ctx, p+"ch/i03")
	require.NoError(t, err)
	waitIDs(t, res, "ch", 2*time.Second, "i00", "i01", "i02", "i04", "i05", "i06", "i07", "i08", "i09")
	moved, movedOther := 0, 0
	for k := range keys {
		sel, err := lb.PickKey("ch", "user-"+strconv.Itoa(k))
		require.NoError(t, err)
		if sel.Instance.ID != before[k] {
			moved++
			if before[k] != "i03" {
				movedOther++
			}
		}
		sel.Report(nil)
	}
	t.Logf("removing 1 of 10 remapped %.1f%% of keys", 100*float64(moved)/keys)
	assert.LessOrEqual(t, moved, keys*15/100)
	assert.Zero(t, movedOther, "only the removed instance's keys move")
}

func TestPowerOfTwoPrefersLessLoaded(t *testing.T) {
	res, _, _ := balancerFixture(t, []discovery.Instance{inst("p2c", "a", 1), inst("p2c", "b", 2), inst("p2c", "c", 3)})
	lb := newBalancer(t, res, discovery.PowerOfTwo)
	// One request in flight on "a", none elsewhere.
	var held discovery.Selection
	for {
		sel, err := lb.Pick("p2c")
		require.NoError(t, err)
		if sel.Instance.ID == "a" {
			held = sel
			break
		}
		sel.Report(nil)
	}
	assert.EqualValues(t, 1, lb.InFlight("p2c", "a"))
	counts := map[string]int{}
	for range 300 {
		counts[pick(t, lb, "p2c")]++
	}
	assert.Zero(t, counts["a"], "the loaded instance loses every comparison")
	assert.InDelta(t, 150, counts["b"], 60)
	held.Report(nil)
	assert.Zero(t, lb.InFlight("p2c", "a"))

	// Requests that are never released: the load stays level.
	var all []discovery.Selection
	for range 300 {
		sel, err := lb.Pick("p2c")
		require.NoError(t, err)
		all = append(all, sel)
	}
	for _, id := range []string{"a", "b", "c"} {
		assert.InDelta(t, 100, lb.InFlight("p2c", id), 3, id)
	}
	for _, sel := range all {
		sel.Report(nil)
	}
}

func TestFailedSkippedForCooldown(t *testing.T) {
	for _, s := range []discovery.Strategy{discovery.RoundRobin, discovery.Random, discovery.WeightedRoundRobin, discovery.PowerOfTwo, discovery.ConsistentHash} {
		t.Run(s.String(), func(t *testing.T) {
			res, _, _ := balancerFixture(t, []discovery.Instance{inst("f", "a", 1), inst("f", "b", 2), inst("f", "c", 3)})
			// A cool-down no test run outlasts: every check below holds unconditionally.
			lb := newBalancer(t, res, s, discovery.WithCooldown(time.Hour))
			lb.MarkFailed("f", "a")
			// Reported through Report as well.
			for {
				sel, err := lb.PickKey("f", "k")
				require.NoError(t, err)
				if sel.Instance.ID == "b" {
					sel.Report(errors.New("connection refused"))
					break
				}
				sel.Report(nil)
			}
			for k := range 200 {
				sel, err := lb.PickKey("f", strconv.Itoa(k))
				require.NoError(t, err)
				assert.Equal(t, "c", sel.Instance.ID)
				sel.Report(nil)
			}
			lb.MarkFailed("f", "c")
			_, err := lb.Pick("f")
			assert.ErrorIs(t, err, discovery.ErrNoInstance, "all cooling down")

			// With a short cool-down, failed instances come back.
			const cooldown = 100 * time.Millisecond
			short := newBalancer(t, res, s, discovery.WithCooldown(cooldown))
			short.MarkFailed("f", "a")
			short.MarkFailed("f", "b")
			assert.EventuallyWithT(t, func(c *assert.CollectT) {
				seen := map[string]bool{}
				for k := range 200 {
					sel, err := short.PickKey("f", strconv.Itoa(k))
					if !assert.NoError(c, err) {
						return
					}
					seen[sel.Instance.ID] = true
					sel.Report(nil)
				}
				assert.True(c, seen["a"] && seen["b"], "picked: %v", seen)
			}, 3*cooldown+time.Second, 10*time.Millisecond, "back after the cool-down")
		})
	}
}

func TestHealthChecks(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer ok.Close()
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer bad.Close()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closedPort := closed.Addr().(*net.TCPAddr).Port
	require.NoError(t, closed.Close())

	hostPort := func(s *httptest.Server) int { return s.Listener.Addr().(*net.TCPAddr).Port }
	insts := []discovery.Instance{inst("hc", "bad", hostPort(bad)), inst("hc", "closed", closedPort), inst("hc", "ok", hostPort(ok))}

	for name, check := range map[string]discovery.HealthChecker{
		"http": discovery.HTTPCheck("/healthz", nil),
		"tcp":  discovery.TCPCheck(),
		"func": discovery.CheckFunc(func(_ context.Context, in discovery.Instance) error {
			if in.ID != "ok" {
				return errors.New("unhealthy")
			}
			return nil
		}),
	} {
		t.Run(name, func(t *testing.T) {
			res, _, _ := balancerFixture(t, insts)
			lb := newBalancer(t, res, discovery.RoundRobin, discovery.WithHealthCheck(check, 50*time.Millisecond), discovery.WithCooldown(time.Second))
			pick(t, lb, "hc") // the balancer checks the services it has been asked for
			want := map[string]bool{"http": true, "tcp": false, "func": true}[name]
			require.EventuallyWithT(t, func(c *assert.CollectT) {
				for range 30 {
					sel, err := lb.Pick("hc")
					if !assert.NoError(c, err) {
						return
					}
					sel.Report(nil)
					assert.NotEqual(c, "closed", sel.Instance.ID)
					if want {
						assert.NotEqual(c, "bad", sel.Instance.ID)
					}
				}
			}, 3*time.Second, 20*time.Millisecond, "failing instances skipped")
		})
	}
}

func TestPickAfterChanges(t *testing.T) {
	res, cli, p := balancerFixture(t, []discovery.Instance{inst("chg", "a", 1)})
	lb := newBalancer(t, res, discovery.RoundRobin)
	assert.Equal(t, "a", pick(t, lb, "chg"))
	ctx := etcdtest.Context(t, 10*time.Second)
	putInstances(ctx, t, cli, p, inst("chg", "b", 2))
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		seen := map[string]bool{}
		for range 2 {
			sel, err := lb.Pick("chg")
			if assert.NoError(c, err) {
				seen[sel.Instance.ID] = true
				sel.Report(nil)
			}
		}
		assert.True(c, seen["b"])
	}, 2*time.Second, 5*time.Millisecond)
	_, err := cli.Delete(ctx, p+"chg/", clientv3.WithPrefix())
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		_, err := lb.Pick("chg")
		return errors.Is(err, discovery.ErrNoInstance)
	}, 2*time.Second, 5*time.Millisecond)
}

// Picks, the weighted round-robin and health checks read instances while a writer
// re-registers the same IDs with new addresses: no read is torn (and -race is clean).
func TestPickWhileInstancesChange(t *testing.T) {
	for _, s := range []discovery.Strategy{discovery.RoundRobin, discovery.WeightedRoundRobin, discovery.ConsistentHash} {
		t.Run(s.String(), func(t *testing.T) {
			ctx := etcdtest.Context(t, 30*time.Second)
			cli := etcdtest.Client(t)
			p := etcdtest.Prefix(t)
			// Address 10.0.0.N always goes with port 1000+N; a torn read mixes them.
			consistent := func(in discovery.Instance) bool {
				return in.Address == fmt.Sprintf("10.0.0.%d", in.Port-1000)
			}
			write := func(n int) {
				for _, id := range []string{"a", "b"} {
					in := discovery.Instance{Service: "svc", ID: id, Address: fmt.Sprintf("10.0.0.%d", n), Port: 1000 + n, Weight: 1 + n%3}
					putInstances(ctx, t, cli, p, in)
				}
			}
			write(1)
			res := newResolver(t, ctx, cli, p)
			waitIDs(t, res, "svc", 2*time.Second, "a", "b")
			var torn atomic.Int64
			check := discovery.CheckFunc(func(_ context.Context, in discovery.Instance) error {
				if !consistent(in) {
					torn.Add(1)
				}
				return nil
			})
			lb := newBalancer(t, res, s, discovery.WithHealthCheck(check, time.Millisecond))
			stop := make(chan struct{})
			done := make(chan struct{})
			go func() {
				defer close(done)
				for k := 0; ; k++ {
					select {
					case <-stop:
						return
					default:
					}
					sel, err := lb.PickKey("svc", strconv.Itoa(k))
					if err == nil {
						if !consistent(sel.Instance) {
							torn.Add(1)
						}
						sel.Report(nil)
					}
				}
			}()
			for n := 2; n < 100; n++ {
				write(n)
			}
			waitAddr := func(c *assert.CollectT) {
				insts, err := res.Discover("svc")
				assert.NoError(c, err)
				for _, in := range insts {
					assert.Equal(c, 1099, in.Port)
				}
			}
			assert.EventuallyWithT(t, waitAddr, 5*time.Second, 10*time.Millisecond)
			close(stop)
			<-done
			assert.Zero(t, torn.Load(), "torn reads")
		})
	}
}

// A Balancer health-checks only services picked from recently.
func TestHealthChecksStopWhenIdle(t *testing.T) {
	res, _, _ := balancerFixture(t, []discovery.Instance{inst("idle", "a", 1)})
	var checks atomic.Int64
	check := discovery.CheckFunc(func(context.Context, discovery.Instance) error { checks.Add(1); return nil })
	const interval, idle = 10 * time.Millisecond, 200 * time.Millisecond
	lb := newBalancer(t, res, discovery.RoundRobin, discovery.WithHealthCheck(check, interval), discovery.WithIdleTimeout(idle))
	pick(t, lb, "idle")
	assert.Eventually(t, func() bool { return checks.Load() > 0 }, 2*time.Second, interval)
	prev := int64(-1)
	assert.EventuallyWithT(t, func(c *assert.CollectT) {
		n := checks.Load()
		assert.Equal(c, prev, n, "no check during ten intervals")
		prev = n
	}, 25*idle, 10*interval, "checks stop once the service is idle")
	pick(t, lb, "idle")
	n := checks.Load()
	assert.Eventually(t, func() bool { return checks.Load() > n }, 2*time.Second, interval, "and resume with the next pick")
}
