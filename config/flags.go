package config

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Flag is a feature flag's definition, stored as JSON under <prefix>/<name>.
type Flag struct {
	// Variants maps variant names to their values: bool, string, number or a JSON object.
	Variants map[string]any `json:"variants"`
	// DefaultVariant is served when no rule matches and the rollout does not apply.
	DefaultVariant string `json:"defaultVariant"`
	// OffVariant is served to everyone while the kill switch is engaged; empty means
	// DefaultVariant.
	OffVariant string `json:"offVariant,omitempty"`
	// Killed is the kill switch: when true every evaluation gets OffVariant.
	Killed bool `json:"killed,omitempty"`
	// Rules are tried in order; the first that matches decides.
	Rules []Rule `json:"rules,omitempty"`
	// Rollout splits everyone no rule matched by percentage, sticky per targeting key.
	Rollout []Split `json:"rollout,omitempty"`
}

// Rule matches an evaluation context attribute against values.
type Rule struct {
	// Attribute is the attribute to test; "targetingKey" is the targeting key.
	Attribute string `json:"attribute"`
	// Op is OpEquals (Values has one element) or OpIn.
	Op string `json:"op"`
	// Values are compared with the attribute's value formatted by fmt.Sprint.
	Values []string `json:"values"`
	// Variant is served on a match, unless Rollout is set.
	Variant string `json:"variant,omitempty"`
	// Rollout splits the matching contexts by percentage instead.
	Rollout []Split `json:"rollout,omitempty"`
}

// Rule operators.
const (
	OpEquals = "equals"
	OpIn     = "in"
)

// Split gives Variant Percent of the targeting keys (the splits of a rollout add up to 100).
type Split struct {
	Variant string  `json:"variant"`
	Percent float64 `json:"percent"`
}

// BoolFlag returns a flag with variants "on" (true) and "off" (false), serving on or off;
// the kill switch serves off.
func BoolFlag(on bool) Flag {
	def := "off"
	if on {
		def = "on"
	}
	return Flag{Variants: map[string]any{"on": true, "off": false}, DefaultVariant: def, OffVariant: "off"}
}

// RolloutFlag returns a boolean flag that is on for percent of the targeting keys; the
// kill switch and contexts without a targeting key get "off".
func RolloutFlag(percent float64) Flag {
	f := BoolFlag(false)
	f.Rollout = []Split{{Variant: "on", Percent: percent}, {Variant: "off", Percent: 100 - percent}}
	return f
}

// Validate reports the first problem that would stop the flag from evaluating.
func (f Flag) Validate(name string) error {
	bad := func(format string, args ...any) error {
		return &FlagError{Flag: name, Reason: fmt.Sprintf(format, args...)}
	}
	if len(f.Variants) == 0 {
		return bad("no variants")
	}
	if _, ok := f.Variants[f.DefaultVariant]; !ok {
		return bad("default variant %q is not a variant", f.DefaultVariant)
	}
	if _, ok := f.Variants[f.OffVariant]; f.OffVariant != "" && !ok {
		return bad("off variant %q is not a variant", f.OffVariant)
	}
	checkSplits := func(where string, splits []Split) error {
		if len(splits) == 0 {
			return nil
		}
		var sum float64
		for _, sp := range splits {
			if _, ok := f.Variants[sp.Variant]; !ok {
				return bad("%s: unknown variant %q", where, sp.Variant)
			}
			if sp.Percent < 0 || sp.Percent > 100 || math.IsNaN(sp.Percent) {
				return bad("%s: percent %v out of 0-100", where, sp.Percent)
			}
			sum += sp.Percent
		}
		if math.Abs(sum-100) > 1e-6 {
			return bad("%s: percentages add up to %v, not 100", where, sum)
		}
		return nil
	}
	if err := checkSplits("rollout", f.Rollout); err != nil {
		return err
	}
	for i, r := range f.Rules {
		where := fmt.Sprintf("rule %d", i)
		if r.Attribute == "" {
			return bad("%s: empty attribute", where)
		}
		switch r.Op {
		case OpEquals:
			if len(r.Values) != 1 {
				return bad("%s: %s needs exactly one value, has %d", where, OpEquals, len(r.Values))
			}
		case OpIn:
			if len(r.Values) == 0 {
				return bad("%s: %s needs values", where, OpIn)
			}
		default:
			return bad("%s: unknown op %q (want %q or %q)", where, r.Op, OpEquals, OpIn)
		}
		if (r.Variant == "") == (len(r.Rollout) == 0) {
			return bad("%s: needs either a variant or a rollout", where)
		}
		if r.Variant != "" {
			if _, ok := f.Variants[r.Variant]; !ok {
				return bad("%s: unknown variant %q", where, r.Variant)
			}
		}
		if err := checkSplits(where, r.Rollout); err != nil {
			return err
		}
	}
	return nil
}

// Reason says why an evaluation returned its variant (OpenFeature's reasons).
type Reason string

// Reasons.
const (
	ReasonStatic         Reason = "STATIC"          // no rules or rollout: the default variant
	ReasonDefault        Reason = "DEFAULT"         // rules exist but none matched, no rollout
	ReasonTargetingMatch Reason = "TARGETING_MATCH" // a rule matched
	ReasonSplit          Reason = "SPLIT"           // the percentage rollout decided
	ReasonDisabled       Reason = "DISABLED"        // the kill switch is engaged: the off variant
)

// EvalContext is who a flag is evaluated for.
type EvalContext struct {
	// TargetingKey identifies the subject (a user or tenant ID); rollouts hash it.
	TargetingKey string
	// Attributes are matched by rules.
	Attributes map[string]any
}

// Evaluation is the result of evaluating a flag.
type Evaluation struct {
	Flag    string
	Variant string
	Value   any
	Reason  Reason
}

// FlagChange is a flag's change, as delivered to Flags.Watch. Old is nil when the flag
// was created, New is nil when it was deleted. A definition that does not parse is
// reported with Err set.
type FlagChange struct {
	Name     string
	Old, New *Flag
	Err      error
}

// Flags evaluates feature flags kept under a prefix, from memory.
type Flags struct {
	s *Store

	mu       sync.RWMutex
	compiled map[string]*compiledFlag
}

type compiledFlag struct {
	rev  int64
	flag Flag
	err  error
}

// NewFlags returns Flags over prefix. It accepts the Store's options.
func NewFlags(cli *clientv3.Client, prefix string, opts ...Option) (*Flags, error) {
	s, err := New(cli, prefix, opts...)
	if err != nil {
		return nil, err
	}
	return &Flags{s: s, compiled: map[string]*compiledFlag{}}, nil
}

// WaitReady blocks until the flags are in memory, ctx ends, or Flags closes.
func (f *Flags) WaitReady(ctx context.Context) error { return f.s.WaitReady(ctx) }

// Close stops the cache; it is idempotent.
func (f *Flags) Close() error { return f.s.Close() }

// Set validates and stores a flag definition.
func (f *Flags) Set(ctx context.Context, name string, flag Flag) error {
	if err := validFlagName(name); err != nil {
		return err
	}
	if err := flag.Validate(name); err != nil {
		return err
	}
	return f.s.Set(ctx, name, flag)
}

// Delete removes a flag.
func (f *Flags) Delete(ctx context.Context, name string) error {
	if err := validFlagName(name); err != nil {
		return err
	}
	return f.s.Delete(ctx, name)
}

// Kill engages (true) or releases (false) a flag's kill switch, with a compare-and-swap
// on the flag's revision so a concurrent edit is never overwritten.
func (f *Flags) Kill(ctx context.Context, name string, killed bool) error {
	if err := validFlagName(name); err != nil {
		return err
	}
	key := f.s.prefix + name
	for range maxAttempts {
		resp, err := f.s.cli.Get(ctx, key)
		if err != nil {
			return fmt.Errorf("config: kill %q: %w", name, err)
		}
		if len(resp.Kvs) == 0 {
			return fmt.Errorf("%w: %q", ErrFlagNotFound, name)
		}
		var flag Flag
		if err := json.Unmarshal(resp.Kvs[0].Value, &flag); err != nil {
			return &FlagError{Flag: name, Reason: "bad JSON: " + err.Error()}
		}
		flag.Killed = killed
		b, err := json.Marshal(flag)
		if err != nil {
			return fmt.Errorf("config: kill %q: %w", name, err)
		}
		txn, err := f.s.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", resp.Kvs[0].ModRevision)).
			Then(clientv3.OpPut(key, string(b))).Commit()
		if err != nil {
			return fmt.Errorf("config: kill %q: %w", name, err)
		}
		if txn.Succeeded {
			return nil
		}
	}
	return fmt.Errorf("config: kill %q: %w", name, ErrConflict)
}

// Flag returns a flag's definition from memory.
func (f *Flags) Flag(name string) (Flag, error) {
	c, err := f.lookup(name)
	if err != nil {
		return Flag{}, err
	}
	return c.flag, c.err
}

// Names returns the defined flags, sorted.
func (f *Flags) Names() []string { return f.s.Keys("") }

func (f *Flags) lookup(name string) (*compiledFlag, error) {
	if err := validFlagName(name); err != nil {
		return nil, err
	}
	v, err := f.s.lookup(name)
	if errors.Is(err, ErrNotFound) {
		f.mu.Lock()
		delete(f.compiled, name)
		f.mu.Unlock()
		return nil, fmt.Errorf("%w: %q", ErrFlagNotFound, name)
	}
	if err != nil {
		return nil, err
	}
	f.mu.RLock()
	c := f.compiled[name]
	f.mu.RUnlock()
	if c != nil && c.rev == v.rev {
		return c, nil
	}
	c = compile(name, v.raw, v.rev)
	f.mu.Lock()
	if old := f.compiled[name]; old == nil || old.rev < c.rev {
		f.compiled[name] = c
	}
	f.mu.Unlock()
	return c, nil
}

func compile(name string, raw []byte, rev int64) *compiledFlag {
	c := &compiledFlag{rev: rev}
	if err := json.Unmarshal(raw, &c.flag); err != nil {
		c.err = &FlagError{Flag: name, Reason: "bad JSON: " + err.Error()}
		return c
	}
	c.err = c.flag.Validate(name)
	return c
}

// Evaluate evaluates a flag for ec: the kill switch, then the rules in order, then the
// rollout, then the default variant.
func (f *Flags) Evaluate(name string, ec EvalContext) (Evaluation, error) {
	c, err := f.lookup(name)
	if err != nil {
		return Evaluation{Flag: name}, err
	}
	if c.err != nil {
		return Evaluation{Flag: name}, c.err
	}
	variant, reason := c.flag.decide(name, ec)
	return Evaluation{Flag: name, Variant: variant, Value: c.flag.Variants[variant], Reason: reason}, nil
}

func (fl *Flag) decide(name string, ec EvalContext) (string, Reason) {
	if fl.Killed {
		if fl.OffVariant != "" {
			return fl.OffVariant, ReasonDisabled
		}
		return fl.DefaultVariant, ReasonDisabled
	}
	for _, r := range fl.Rules {
		if !r.matches(ec) {
			continue
		}
		if r.Variant != "" {
			return r.Variant, ReasonTargetingMatch
		}
		if v, ok := split(name, ec.TargetingKey, r.Rollout); ok {
			return v, ReasonTargetingMatch
		}
	}
	if v, ok := split(name, ec.TargetingKey, fl.Rollout); ok {
		return v, ReasonSplit
	}
	if len(fl.Rules) > 0 || len(fl.Rollout) > 0 {
		return fl.DefaultVariant, ReasonDefault
	}
	return fl.DefaultVariant, ReasonStatic
}

func (r *Rule) matches(ec EvalContext) bool {
	var val string
	if r.Attribute == "targetingKey" {
		if ec.TargetingKey == "" {
			return false
		}
		val = ec.TargetingKey
	} else {
		x, ok := ec.Attributes[r.Attribute]
		if !ok {
			return false
		}
		val = fmt.Sprint(x)
	}
	return slices.Contains(r.Values, val)
}

// split assigns key to a variant by its bucket: a hash of the flag name and the key,
// fixed across processes and releases, in 1/10000ths.
func split(name, key string, splits []Split) (string, bool) {
	if len(splits) == 0 || key == "" {
		return "", false
	}
	b := float64(Bucket(name, key)) / 100
	var cum float64
	for _, sp := range splits {
		cum += sp.Percent
		if b < cum {
			return sp.Variant, true
		}
	}
	return splits[len(splits)-1].Variant, true
}

// Bucket returns the rollout bucket (0-9999) of a targeting key for a flag: FNV-1a of
// "<flag>/<key>" followed by a 64-bit finaliser. Every process computes the same bucket.
func Bucket(flag, key string) int {
	h := uint64(14695981039346656037)
	add := func(s string) {
		for i := 0; i < len(s); i++ {
			h ^= uint64(s[i])
			h *= 1099511628211
		}
	}
	add(flag)
	add("/")
	add(key)
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return int(h % 10000)
}

// Bool evaluates a flag whose variants are booleans.
func (f *Flags) Bool(name string, ec EvalContext) (bool, error) {
	ev, err := f.Evaluate(name, ec)
	if err != nil {
		return false, err
	}
	b, ok := ev.Value.(bool)
	if !ok {
		return false, &TypeError{Key: name, Want: "bool", Got: kindOfValue(ev.Value)}
	}
	return b, nil
}

// String evaluates a flag whose variants are strings.
func (f *Flags) String(name string, ec EvalContext) (string, error) {
	ev, err := f.Evaluate(name, ec)
	if err != nil {
		return "", err
	}
	s, ok := ev.Value.(string)
	if !ok {
		return "", &TypeError{Key: name, Want: "string", Got: kindOfValue(ev.Value)}
	}
	return s, nil
}

// Enabled is Bool that treats every error as false, for call sites that only branch.
func (f *Flags) Enabled(name string, ec EvalContext) bool {
	b, err := f.Bool(name, ec)
	return err == nil && b
}

func kindOfValue(x any) string {
	switch x.(type) {
	case float64:
		return "number"
	}
	return kindOf(x)
}

// Watch calls fn for every flag change, on the Flags' dispatch goroutine (see
// Store.Watch).
func (f *Flags) Watch(fn func(FlagChange)) (cancel func(), err error) {
	if fn == nil {
		return nil, fmt.Errorf("%w: nil callback", ErrInvalidOption)
	}
	return f.s.Watch("", func(c Change) {
		fc := FlagChange{Name: c.Key}
		decode := func(raw json.RawMessage) *Flag {
			if raw == nil {
				return nil
			}
			var fl Flag
			if err := json.Unmarshal(raw, &fl); err != nil {
				fc.Err = &FlagError{Flag: c.Key, Reason: "bad JSON: " + err.Error()}
				return nil
			}
			return &fl
		}
		fc.Old, fc.New = decode(c.Old), decode(c.New)
		if fc.New != nil && fc.Err == nil {
			fc.Err = fc.New.Validate(c.Key)
		}
		fn(fc)
	})
}

func validFlagName(name string) error {
	if name == "" || strings.Contains(name, "/") {
		return fmt.Errorf("%w: flag name %q (empty or contains '/')", ErrInvalidKey, name)
	}
	return nil
}
