package openfeature

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	of "github.com/open-feature/go-sdk/openfeature"

	"github.com/etcd-monitor/etcd-monitor/config"
)

// Name is the provider name reported in Metadata and events.
const Name = "etcd-monitor"

// Provider adapts config.Flags to OpenFeature.
type Provider struct {
	flags *config.Flags
	init  time.Duration

	events chan of.Event

	mu     sync.Mutex
	queue  []of.Event
	wake   chan struct{}
	stop   chan struct{}
	cancel func()
	wg     sync.WaitGroup
	state  int // 0 new, 1 running, 2 shut down
}

var (
	_ of.FeatureProvider = (*Provider)(nil)
	_ of.StateHandler    = (*Provider)(nil)
	_ of.EventHandler    = (*Provider)(nil)
)

// New returns a provider over flags. Init waits at most 10s for the flags to load, and
// fails for nil flags.
func New(flags *config.Flags) *Provider {
	return &Provider{
		flags:  flags,
		init:   10 * time.Second,
		events: make(chan of.Event),
		wake:   make(chan struct{}, 1),
		stop:   make(chan struct{}),
	}
}

// Metadata names the provider.
func (p *Provider) Metadata() of.Metadata { return of.Metadata{Name: Name} }

// Hooks returns none.
func (p *Provider) Hooks() []of.Hook { return nil }

// Init waits for the flags to load and starts forwarding flag changes as events.
func (p *Provider) Init(of.EvaluationContext) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state != 0 {
		return fmt.Errorf("openfeature: provider already initialised or shut down")
	}
	if p.flags == nil {
		return fmt.Errorf("%w: openfeature: nil flags", config.ErrInvalidArgument)
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.init)
	defer cancel()
	if err := p.flags.WaitReady(ctx); err != nil {
		return fmt.Errorf("openfeature: flags not ready: %w", err)
	}
	stopWatch, err := p.flags.Watch(func(c config.FlagChange) {
		p.enqueue(of.Event{
			ProviderName: Name,
			EventType:    of.ProviderConfigChange,
			ProviderEventDetails: of.ProviderEventDetails{
				Message:     "flag " + c.Name + " changed",
				FlagChanges: []string{c.Name},
			},
		})
	})
	if err != nil {
		return err
	}
	p.cancel = stopWatch
	p.state = 1
	p.wg.Add(1)
	go p.forward()
	return nil
}

// Shutdown stops forwarding events and closes the event channel.
func (p *Provider) Shutdown() {
	p.mu.Lock()
	state := p.state
	p.state = 2
	p.mu.Unlock()
	if state == 2 {
		return
	}
	if p.cancel != nil {
		p.cancel()
	}
	close(p.stop)
	p.wg.Wait()
	close(p.events)
}

// EventChannel returns the provider's events; it is closed by Shutdown.
func (p *Provider) EventChannel() <-chan of.Event { return p.events }

func (p *Provider) enqueue(ev of.Event) {
	p.mu.Lock()
	p.queue = append(p.queue, ev)
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// forward hands queued events to the SDK, so a slow reader never stalls the flags.
func (p *Provider) forward() {
	defer p.wg.Done()
	for {
		select {
		case <-p.stop:
			return
		case <-p.wake:
		}
		for {
			p.mu.Lock()
			if len(p.queue) == 0 {
				p.mu.Unlock()
				break
			}
			ev := p.queue[0]
			p.queue = p.queue[1:]
			p.mu.Unlock()
			select {
			case p.events <- ev:
			case <-p.stop:
				return
			}
		}
	}
}

func evalContext(flat of.FlattenedContext) config.EvalContext {
	ec := config.EvalContext{Attributes: map[string]any{}}
	for k, v := range flat {
		if k == of.TargetingKey {
			ec.TargetingKey, _ = v.(string)
			continue
		}
		ec.Attributes[k] = v
	}
	return ec
}

// evaluate returns the evaluation, or the resolution error to report.
func (p *Provider) evaluate(flag string, flat of.FlattenedContext) (config.Evaluation, *of.ProviderResolutionDetail) {
	ev, err := p.flags.Evaluate(flag, evalContext(flat))
	if err == nil {
		return ev, nil
	}
	var re of.ResolutionError
	switch {
	case errors.Is(err, config.ErrFlagNotFound):
		re = of.NewFlagNotFoundResolutionError(err.Error())
	case errors.Is(err, config.ErrInvalidFlag):
		re = of.NewParseErrorResolutionError(err.Error())
	case errors.Is(err, config.ErrNotReady):
		re = of.NewProviderNotReadyResolutionError(err.Error())
	default:
		re = of.NewGeneralResolutionError(err.Error())
	}
	return ev, &of.ProviderResolutionDetail{ResolutionError: re, Reason: of.ErrorReason}
}

func detail(ev config.Evaluation) of.ProviderResolutionDetail {
	return of.ProviderResolutionDetail{Reason: of.Reason(ev.Reason), Variant: ev.Variant}
}

func mismatch(ev config.Evaluation, want string) of.ProviderResolutionDetail {
	return of.ProviderResolutionDetail{
		ResolutionError: of.NewTypeMismatchResolutionError(fmt.Sprintf("flag %q variant %q is %T, not %s", ev.Flag, ev.Variant, ev.Value, want)),
		Reason:          of.ErrorReason,
	}
}

// BooleanEvaluation evaluates a flag with boolean variants.
func (p *Provider) BooleanEvaluation(_ context.Context, flag string, def bool, flat of.FlattenedContext) of.BoolResolutionDetail {
	ev, bad := p.evaluate(flag, flat)
	if bad != nil {
		return of.BoolResolutionDetail{Value: def, ProviderResolutionDetail: *bad}
	}
	v, ok := ev.Value.(bool)
	if !ok {
		return of.BoolResolutionDetail{Value: def, ProviderResolutionDetail: mismatch(ev, "bool")}
	}
	return of.BoolResolutionDetail{Value: v, ProviderResolutionDetail: detail(ev)}
}

// StringEvaluation evaluates a flag with string variants.
func (p *Provider) StringEvaluation(_ context.Context, flag string, def string, flat of.FlattenedContext) of.StringResolutionDetail {
	ev, bad := p.evaluate(flag, flat)
	if bad != nil {
		return of.StringResolutionDetail{Value: def, ProviderResolutionDetail: *bad}
	}
	v, ok := ev.Value.(string)
	if !ok {
		return of.StringResolutionDetail{Value: def, ProviderResolutionDetail: mismatch(ev, "string")}
	}
	return of.StringResolutionDetail{Value: v, ProviderResolutionDetail: detail(ev)}
}

// FloatEvaluation evaluates a flag with number variants.
func (p *Provider) FloatEvaluation(_ context.Context, flag string, def float64, flat of.FlattenedContext) of.FloatResolutionDetail {
	ev, bad := p.evaluate(flag, flat)
	if bad != nil {
		return of.FloatResolutionDetail{Value: def, ProviderResolutionDetail: *bad}
	}
	v, ok := ev.Value.(float64)
	if !ok {
		return of.FloatResolutionDetail{Value: def, ProviderResolutionDetail: mismatch(ev, "float")}
	}
	return of.FloatResolutionDetail{Value: v, ProviderResolutionDetail: detail(ev)}
}

// IntEvaluation evaluates a flag with integral number variants.
func (p *Provider) IntEvaluation(_ context.Context, flag string, def int64, flat of.FlattenedContext) of.IntResolutionDetail {
	ev, bad := p.evaluate(flag, flat)
	if bad != nil {
		return of.IntResolutionDetail{Value: def, ProviderResolutionDetail: *bad}
	}
	v, ok := ev.Value.(float64)
	if !ok || v != math.Trunc(v) || math.Abs(v) > 1<<53 {
		return of.IntResolutionDetail{Value: def, ProviderResolutionDetail: mismatch(ev, "int")}
	}
	return of.IntResolutionDetail{Value: int64(v), ProviderResolutionDetail: detail(ev)}
}

// ObjectEvaluation evaluates a flag of any variant type.
func (p *Provider) ObjectEvaluation(_ context.Context, flag string, def any, flat of.FlattenedContext) of.InterfaceResolutionDetail {
	ev, bad := p.evaluate(flag, flat)
	if bad != nil {
		return of.InterfaceResolutionDetail{Value: def, ProviderResolutionDetail: *bad}
	}
	return of.InterfaceResolutionDetail{Value: ev.Value, ProviderResolutionDetail: detail(ev)}
}
