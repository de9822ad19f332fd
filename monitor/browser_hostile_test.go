package monitor_test

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/etcd-monitor/etcd-monitor/internal/etcdtest"
	"github.com/etcd-monitor/etcd-monitor/monitor"
)

// A link whose fragment names a malformed cluster ("#cluster=%") still opens the page, on
// the first cluster; a token the server refuses is not kept for the session, so a reload
// does not send it again.
func TestStatusPageMalformedLinkAndRefusedToken(t *testing.T) {
	t.Parallel() // its own browser and service
	ctx := browser(t)
	svc, err := monitor.New([]monitor.Cluster{{Name: "main", Client: etcdtest.Client(t)}})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, svc.Close()) })
	require.NoError(t, svc.Refresh(etcdtest.Context(t, 30*time.Second)))
	open := httptest.NewServer(svc)
	t.Cleanup(open.Close)
	authed := httptest.NewServer(withTokens(svc, "admin-5ecret", "read-5ecret"))
	t.Cleanup(authed.Close)
	const wait, poll = 10 * time.Second, 50 * time.Millisecond

	view, _ := tab(t, ctx)
	browse(t, view, chromedp.Navigate(open.URL+"/#cluster=%"))
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		shown, err := evalJS[string](view, `(document.getElementById('main').hidden ? 'hidden' : 'shown') + '|' +
			document.getElementById('cluster-title').textContent + '|' + document.getElementById('banner').textContent`)
		assert.NoError(ct, err)
		assert.Equal(ct, "shown|Cluster main|", shown)
	}, wait, poll)

	secure, _ := tab(t, ctx)
	browse(t, secure, chromedp.Navigate(authed.URL+"/"),
		chromedp.WaitVisible(chromedp.ID("login")),
		chromedp.SendKeys(chromedp.ID("token"), "wrong-token"),
		chromedp.Click(chromedp.CSS(`#login-form button`)))
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		why, err := evalJS[string](secure, `document.getElementById('login-why').textContent`)
		assert.NoError(ct, err)
		assert.Contains(ct, why, "refused")
		kept, err := evalJS[bool](secure, `sessionStorage.getItem('etcd-monitor-token') !== null`)
		assert.NoError(ct, err)
		assert.False(ct, kept, "the refused token is forgotten")
	}, wait, poll)
}
