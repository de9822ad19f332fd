package memberhttp_test

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/internal/memberhttp"
	"github.com/etcd-monitor/etcd-monitor/internal/memberhttp/memberhttptest"
)

func livez(c *memberhttp.Clients, p *memberhttptest.Proxy) error {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, "http://"+p.Addr+"/livez", nil)
	if err != nil {
		return err
	}
	return c.Do(req, false, func(resp *http.Response) error {
		_, err := io.Copy(io.Discard, resp.Body)
		return err
	})
}

// closesSoon waits until p has no connection open: a connection closed at once is closed
// well within its deadline, and one kept alive would stay for IdleConnTimeout.
func closesSoon(t *testing.T, p *memberhttptest.Proxy, msg string) {
	t.Helper()
	assert.EventuallyWithT(t, func(ct *assert.CollectT) { assert.Zero(ct, p.Open.Load(), msg) }, 5*time.Second, 5*time.Millisecond)
}

// Keep closes the kept-alive connection of a member that left, at once when idle and
// when its request ends when in flight, and keeps the others': through a transport of
// the Clients' own and through a client given.
func TestClientsKeepClosesRemovedMembers(t *testing.T) {
	for _, tc := range []struct {
		name string
		hc   *http.Client
	}{
		{"own", nil},
		{"given", &http.Client{Transport: memberhttp.NewTransport(nil)}},
		{"given default", &http.Client{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := memberhttp.NewClients(tc.hc)
			t.Cleanup(c.Close)
			a, b := twoMembers(t)
			require.NoError(t, livez(c, a))
			require.NoError(t, livez(c, b))
			require.EqualValues(t, 1, a.Open.Load())
			require.EqualValues(t, 1, b.Open.Load())

			c.Keep([]string{"http://" + a.Addr})
			closesSoon(t, b, "the removed member's idle connection")
			require.NoError(t, livez(c, a))
			assert.EqualValues(t, 1, a.Accepted.Load(), "the other member's connection is kept and reused")
			assert.EqualValues(t, 1, a.Open.Load())

			// A request in flight when its member leaves: its connection closes when it ends.
			b.Hold()
			done := make(chan error, 1)
			go func() { done <- livez(c, b) }()
			assert.EventuallyWithT(t, func(ct *assert.CollectT) { assert.EqualValues(ct, 2, b.Accepted.Load()) },
				10*time.Second, time.Millisecond, "the request reached the member")
			c.Keep([]string{"http://" + a.Addr})
			b.Release()
			require.NoError(t, <-done)
			closesSoon(t, b, "the removed member's connection, once its request ended")
			assert.EqualValues(t, 1, a.Open.Load(), "the other member's connection")
		})
	}
}
