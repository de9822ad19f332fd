package bench

import (
	"errors"
	"fmt"
	"io"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Option configures a Runner.
type Option interface{ apply(*options) }

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

type options struct {
	logger           *zap.Logger
	clientConfig     clientv3.Config
	progress         io.Writer
	progressInterval time.Duration
}

func defaultOptions() options {
	return options{
		logger:           zap.NewNop(),
		clientConfig:     clientv3.Config{DialTimeout: 5 * time.Second},
		progressInterval: time.Second,
	}
}

func (o *options) validate() error {
	if o.logger == nil {
		return errors.New("bench: WithLogger: nil logger")
	}
	if o.progressInterval <= 0 {
		return fmt.Errorf("bench: WithProgress: interval must be positive, got %v", o.progressInterval)
	}
	if o.clientConfig.DialTimeout < 0 {
		return fmt.Errorf("bench: WithClientConfig: negative dial timeout %v", o.clientConfig.DialTimeout)
	}
	return nil
}

// WithLogger sets the logger. Default: no logging.
func WithLogger(l *zap.Logger) Option {
	return optionFunc(func(o *options) { o.logger = l })
}

// WithClientConfig is the template for the run's own connections: TLS, credentials,
// dial timeout. Its Endpoints, when empty, are those of the client given to New.
// Default: the client's endpoints, a 5s dial timeout, no TLS.
func WithClientConfig(cfg clientv3.Config) Option {
	return optionFunc(func(o *options) { o.clientConfig = cfg })
}

// WithProgress writes progress to w every interval while a run is going: a bar redrawn
// in place when w is a terminal, one plain line per interval otherwise. Default: none.
func WithProgress(w io.Writer, interval time.Duration) Option {
	return optionFunc(func(o *options) {
		o.progress = w
		o.progressInterval = interval
	})
}
