package txn

import (
	"context"
	"errors"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// errRetriesExhausted stops concurrency.STM's unbounded retry loop from inside.
var errRetriesExhausted = errors.New("txn: retries exhausted")

// Atomic runs fn as a software transaction (concurrency.STM) at the isolation of
// WithIsolation (default SerializableSnapshot): fn's reads and writes commit together or
// fn runs again on a conflict, up to WithRetries times (default 100), after which the
// error is a *ConflictError (matching ErrConflict) carrying the number of attempts.
// ctx bounds every read and the commit. An error from fn aborts without writing and is
// returned wrapped. It returns the commit revision. fn may run several times and must
// not have side effects.
func Atomic(ctx context.Context, cli *clientv3.Client, fn func(stm concurrency.STM) error, opts ...Option) (int64, error) {
	if cli == nil {
		return 0, fmt.Errorf("%w: nil client", ErrInvalidArgument)
	}
	if fn == nil {
		return 0, fmt.Errorf("%w: nil transaction function", ErrInvalidArgument)
	}
	o, err := newOptions("Atomic", setRetries|setIsolation, opts)
	if err != nil {
		return 0, err
	}
	attempts := 0
	var fnErr error
	apply := func(s concurrency.STM) error {
		attempts++
		if attempts > o.retries+1 {
			return errRetriesExhausted
		}
		if attempts > 1 {
			// A conflict: pause before re-reading, as Update does.
			if err := pause(ctx, o, attempts-1); err != nil {
				return err
			}
		}
		fnErr = fn(s)
		return fnErr
	}
	resp, err := concurrency.NewSTM(cli, apply,
		concurrency.WithAbortContext(ctx), concurrency.WithIsolation(o.isolation))
	switch {
	case errors.Is(err, errRetriesExhausted):
		return 0, &ConflictError{Attempts: attempts - 1}
	case err != nil && fnErr != nil:
		return 0, fmt.Errorf("txn: atomic: %w", err)
	case err != nil:
		if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			return 0, fmt.Errorf("txn: atomic: %w: %w", ctx.Err(), err)
		}
		return 0, fmt.Errorf("txn: atomic: %w", err)
	case resp == nil:
		return 0, fmt.Errorf("txn: atomic: no response")
	}
	return resp.Header.Revision, nil
}
