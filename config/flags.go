package config

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
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
	// Values are compared with the attribute's value: a number attribute (any Go
	// integer or float type, or json.Number) as a number, so that 1000000, 1e6 and
	// float64(1000000) all match "1000000" and nothing is rounded; a string attribute
	// as a string; anything else as formatted by fmt.Sprint.
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
// was created (or its old definition did not parse), New is nil when it was deleted or
// its new definition does not parse. Err is about the new definition only: why it
// does not parse or validate.
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
	// nums[i][j] is Rules[i].Values[j] as a number, when it is one.
	nums [][]*decimal
	// kill is what the kill switch serves when engaged, even for a definition that
	// does not validate, as long as its off variant can be found.
	kill *Evaluation
}

// NewFlags returns Flags over prefix. It accepts the Store's options except
// WithSnapshotPrefix (Flags take no snapshots).
func NewFlags(cli *clientv3.Client, prefix string, opts ...Option) (*Flags, error) {
	for i, opt := range opts {
		if opt == nil {
			return nil, fmt.Errorf("%w: option %d is nil", ErrInvalidArgument, i)
		}
		var o options
		opt.apply(&o)
		if o.set&setSnapshotPrefix != 0 {
			return nil, fmt.Errorf("%w: WithSnapshotPrefix: Flags do not use it", ErrInvalidArgument)
		}
	}
	s, err := New(cli, prefix, opts...)
	if err != nil {
		return nil, err
	}
	return &Flags{s: s, compiled: map[string]*compiledFlag{}}, nil
}

// WaitReady blocks until the flags are in memory, ctx ends, or Flags closes.
func (f *Flags) WaitReady(ctx context.Context) error { return f.s.WaitReady(ctx) }

// Close stops the cache and the callback goroutine and waits for them; it is
// idempotent. Called from a Watch callback it does not wait for that callback (see
// Store.Close).
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

// Kill engages a flag's kill switch: every evaluation then serves its off variant (or
// its default variant when it has none), with ReasonDisabled, even if the rest of the
// definition does not validate. Only the "killed" field of the stored JSON object
// changes: unknown fields and numbers are kept byte for byte. It is a compare-and-swap
// on the flag's revision, so a concurrent edit is never overwritten.
func (f *Flags) Kill(ctx context.Context, name string) error {
	return f.setKilled(ctx, name, true)
}

// Revive releases a flag's kill switch: the "killed" field is removed and the rest of
// the stored definition stays as it is.
func (f *Flags) Revive(ctx context.Context, name string) error {
	return f.setKilled(ctx, name, false)
}

func (f *Flags) setKilled(ctx context.Context, name string, killed bool) error {
	verb := "kill"
	if !killed {
		verb = "revive"
	}
	if err := validFlagName(name); err != nil {
		return err
	}
	key := f.s.prefix + name
	for range maxAttempts {
		resp, err := f.s.cli.Get(ctx, key)
		if err != nil {
			return fmt.Errorf("config: %s %q: %w", verb, name, err)
		}
		if len(resp.Kvs) == 0 {
			return fmt.Errorf("%w: %q", ErrFlagNotFound, name)
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(resp.Kvs[0].Value, &obj); err != nil || obj == nil {
			reason := "not a JSON object"
			if err != nil {
				reason += ": " + err.Error()
			}
			return &FlagError{Flag: name, Reason: reason}
		}
		// encoding/json matches field names without regard to case, so "Killed" or
		// "KILLED" is the kill switch too: every spelling goes, one stays on Kill.
		var spellings []string
		for k := range obj {
			if strings.EqualFold(k, "killed") {
				spellings = append(spellings, k)
			}
		}
		already := len(spellings) == 0 // revived: no field at all
		if killed {
			already = len(spellings) == 1 && spellings[0] == "killed" && string(obj["killed"]) == "true"
		}
		if already {
			return nil // no write, no change event
		}
		for _, k := range spellings {
			delete(obj, k)
		}
		if killed {
			obj["killed"] = json.RawMessage("true")
		}
		var b strings.Builder
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false) // keep the other fields' bytes as they were
		if err := enc.Encode(obj); err != nil {
			return fmt.Errorf("config: %s %q: %w", verb, name, err)
		}
		txn, err := f.s.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", resp.Kvs[0].ModRevision)).
			Then(clientv3.OpPut(key, strings.TrimSuffix(b.String(), "\n"))).Commit()
		if err != nil {
			return fmt.Errorf("config: %s %q: %w", verb, name, err)
		}
		if txn.Succeeded {
			return nil
		}
	}
	return fmt.Errorf("config: %s %q: %w", verb, name, ErrConflict)
}

// Flag returns a copy of a flag's definition from memory, and the error that stops it
// from evaluating, if any.
func (f *Flags) Flag(name string) (Flag, error) {
	c, err := f.lookup(name)
	if err != nil {
		return Flag{}, err
	}
	return c.flag.clone(), c.err
}

// clone returns a deep copy, so that callers cannot change a compiled flag.
func (fl Flag) clone() Flag {
	out := fl
	if fl.Variants != nil {
		out.Variants = make(map[string]any, len(fl.Variants))
		for k, v := range fl.Variants {
			out.Variants[k] = cloneValue(v)
		}
	}
	out.Rollout = slices.Clone(fl.Rollout)
	if fl.Rules != nil {
		out.Rules = make([]Rule, len(fl.Rules))
		for i, r := range fl.Rules {
			r.Values = slices.Clone(r.Values)
			r.Rollout = slices.Clone(r.Rollout)
			out.Rules[i] = r
		}
	}
	return out
}

// cloneValue deep-copies a decoded JSON value (maps and slices; the rest is immutable).
func cloneValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = cloneValue(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = cloneValue(e)
		}
		return out
	}
	return v
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
		c.kill = killSwitch(name, raw)
		return c
	}
	c.err = c.flag.Validate(name)
	c.nums = make([][]*decimal, len(c.flag.Rules))
	for i, r := range c.flag.Rules {
		c.nums[i] = make([]*decimal, len(r.Values))
		for j, v := range r.Values {
			if d, err := parseDecimal(v); err == nil {
				c.nums[i][j] = &d
			}
		}
	}
	if c.flag.Killed {
		c.kill = offEvaluation(name, c.flag.Variants, c.flag.OffVariant, c.flag.DefaultVariant)
	}
	return c
}

// killSwitch reads only the fields the kill switch needs from a definition that does
// not decode as a Flag, so that such a flag can still be killed.
func killSwitch(name string, raw []byte) *Evaluation {
	// Decoded as Flag would be (field names without regard to case); a field of the
	// wrong type is skipped and the rest still read.
	var k struct {
		Variants       map[string]any `json:"variants"`
		DefaultVariant string         `json:"defaultVariant"`
		OffVariant     string         `json:"offVariant"`
		Killed         bool           `json:"killed"`
	}
	var typeErr *json.UnmarshalTypeError
	if err := json.Unmarshal(raw, &k); err != nil && !errors.As(err, &typeErr) {
		return nil
	}
	if !k.Killed {
		return nil
	}
	return offEvaluation(name, k.Variants, k.OffVariant, k.DefaultVariant)
}

// offEvaluation is what a killed flag serves: its off variant, else its default; nil
// when that is not one of its variants.
func offEvaluation(name string, variants map[string]any, off, def string) *Evaluation {
	v := off
	if v == "" {
		v = def
	}
	value, ok := variants[v]
	if !ok {
		return nil
	}
	return &Evaluation{Flag: name, Variant: v, Value: value, Reason: ReasonDisabled}
}

// Evaluate evaluates a flag for ec: the kill switch, then the rules in order, then the
// rollout, then the default variant. The kill switch works even on a definition that
// does not validate, as long as its off (or default) variant exists. Value is the
// caller's copy: changing it changes nothing in Flags.
func (f *Flags) Evaluate(name string, ec EvalContext) (Evaluation, error) {
	c, err := f.lookup(name)
	if err != nil {
		return Evaluation{Flag: name}, err
	}
	if c.kill != nil {
		ev := *c.kill
		ev.Value = cloneValue(ev.Value)
		return ev, nil
	}
	if c.err != nil {
		return Evaluation{Flag: name}, c.err
	}
	variant, reason := c.decide(name, ec)
	return Evaluation{Flag: name, Variant: variant, Value: cloneValue(c.flag.Variants[variant]), Reason: reason}, nil
}

func (c *compiledFlag) decide(name string, ec EvalContext) (string, Reason) {
	fl := &c.flag
	for i, r := range fl.Rules {
		if !r.matches(ec, c.nums[i]) {
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

// matches reports whether the attribute is one of the rule's values; nums are the
// values as numbers (nil where a value is not one).
func (r *Rule) matches(ec EvalContext, nums []*decimal) bool {
	var x any
	if r.Attribute == "targetingKey" {
		if ec.TargetingKey == "" {
			return false
		}
		x = ec.TargetingKey
	} else {
		var ok bool
		if x, ok = ec.Attributes[r.Attribute]; !ok {
			return false
		}
	}
	switch v := x.(type) {
	case string:
		return slices.Contains(r.Values, v)
	case json.Number:
		d, err := parseDecimal(string(v))
		return err == nil && containsNumber(nums, d)
	}
	if lit, ok := numberLiteral(x); ok {
		d, err := parseDecimal(lit)
		return err == nil && containsNumber(nums, d)
	}
	return slices.Contains(r.Values, fmt.Sprint(x))
}

func containsNumber(nums []*decimal, d decimal) bool {
	for _, n := range nums {
		if n != nil && *n == d {
			return true
		}
	}
	return false
}

// numberLiteral formats a Go number exactly (a float by its shortest round-trip form,
// which is what JSON carried) in JSON syntax; ok is false for non-numbers, NaN and
// infinities.
func numberLiteral(x any) (string, bool) {
	switch v := x.(type) {
	case int:
		return strconv.FormatInt(int64(v), 10), true
	case int8:
		return strconv.FormatInt(int64(v), 10), true
	case int16:
		return strconv.FormatInt(int64(v), 10), true
	case int32:
		return strconv.FormatInt(int64(v), 10), true
	case int64:
		return strconv.FormatInt(v, 10), true
	case uint:
		return strconv.FormatUint(uint64(v), 10), true
	case uint8:
		return strconv.FormatUint(uint64(v), 10), true
	case uint16:
		return strconv.FormatUint(uint64(v), 10), true
	case uint32:
		return strconv.FormatUint(uint64(v), 10), true
	case uint64:
		return strconv.FormatUint(v, 10), true
	case float32:
		return floatLiteral(float64(v), 32)
	case float64:
		return floatLiteral(v, 64)
	}
	return "", false
}

func floatLiteral(f float64, bits int) (string, bool) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "", false
	}
	return strconv.FormatFloat(f, 'g', -1, bits), true
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
		return nil, fmt.Errorf("%w: nil callback", ErrInvalidArgument)
	}
	return f.s.Watch("", func(c Change) {
		fc := FlagChange{Name: c.Key}
		decode := func(raw json.RawMessage) (*Flag, error) {
			if raw == nil {
				return nil, nil
			}
			var fl Flag
			if err := json.Unmarshal(raw, &fl); err != nil {
				return nil, &FlagError{Flag: c.Key, Reason: "bad JSON: " + err.Error()}
			}
			return &fl, nil
		}
		fc.Old, _ = decode(c.Old) // nil when the old definition did not parse
		fc.New, fc.Err = decode(c.New)
		if fc.New != nil {
			fc.Err = fc.New.Validate(c.Key)
		}
		fn(fc)
	})
}

func validFlagName(name string) error {
	if name == "" || strings.Contains(name, "/") {
		return &keyError{fmt.Sprintf("flag name %q (empty or contains '/')", name)}
	}
	return nil
}
