package ownership

import (
	"context"
	"time"
)

// hedged makes the request fn and, while no answer has come, makes it again after
// wait, then after twice that, four and eight times that, and every eight times that
// from then on. At most two requests are in flight: when a third is due, the oldest is
// given up. The client sends each request through the next endpoint it balances over,
// so that a member that stops answering while the rest of the cluster serves — a frozen
// process, a connection to a dead machine that stays open — holds the call up about
// wait, not as long as it is silent, while a slow cluster sees at most twice the
// requests. The first success is returned; an error only once no request is left in
// flight (the last one's), or ctx's when it ends first. fn must be safe to apply more
// than once, and late, after the call has returned — a member that stops answering may
// apply a request when it wakes: a read, a delete of a name used once and a grant are
// (a lease granted late has no key and expires), a put is not. discard, if not nil, is
// given every success but the one returned (a second lease granted: it is released).
func hedged[T any](ctx context.Context, wait time.Duration, fn func(context.Context) (T, error), discard func(T)) (T, error) {
	type reply struct {
		i   int // the request's number
		v   T
		err error
	}
	type request struct {
		i      int
		cancel context.CancelFunc
	}
	replies := make(chan reply, 1)
	var live []request // the requests in flight not given up, oldest first
	inFlight, sent := 0, 0
	send := func() {
		rctx, cancel := context.WithCancel(ctx)
		i := sent
		live = append(live, request{i, cancel})
		inFlight++
		sent++
		go func() {
			v, err := fn(rctx)
			replies <- reply{i, v, err}
		}()
	}
	send()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	defer func() {
		for _, r := range live {
			r.cancel()
		}
		for ; inFlight > 0; inFlight-- {
			if r := <-replies; r.err == nil && discard != nil {
				discard(r.v)
			}
		}
	}()
	for {
		select {
		case <-timer.C:
			// Give up the oldest before the next is sent, so that no more than two are
			// ever left to run; a given-up request's reply, an error, comes back like any
			// other.
			if len(live) >= 2 {
				live[0].cancel()
				live = live[1:]
			}
			send()
			timer.Reset(wait << min(sent-1, 3))
		case r := <-replies:
			inFlight--
			for j, l := range live {
				if l.i == r.i {
					l.cancel()
					live = append(live[:j:j], live[j+1:]...)
					break
				}
			}
			if r.err == nil || inFlight == 0 {
				return r.v, r.err
			}
		}
	}
}

// Hedged is hedged for the packages that build on this one: a read of theirs that a
// silent member must not hold up for as long as it is silent.
func Hedged[T any](ctx context.Context, wait time.Duration, fn func(context.Context) (T, error), discard func(T)) (T, error) {
	return hedged(ctx, wait, fn, discard)
}
