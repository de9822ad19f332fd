package alert

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// MatchType is the operator of a Matcher.
type MatchType int

// Match types, as in Alertmanager.
const (
	MatchEqual     MatchType = iota // =
	MatchNotEqual                   // !=
	MatchRegexp                     // =~
	MatchNotRegexp                  // !~
)

func (t MatchType) String() string {
	switch t {
	case MatchEqual:
		return "="
	case MatchNotEqual:
		return "!="
	case MatchRegexp:
		return "=~"
	case MatchNotRegexp:
		return "!~"
	}
	return fmt.Sprintf("MatchType(%d)", int(t))
}

// Matcher matches one label of an alert. A missing label has the value "". Regular
// expressions are anchored, as in Alertmanager. Use NewMatcher or ParseMatcher.
type Matcher struct {
	Name  string
	Type  MatchType
	Value string
	re    *regexp.Regexp
	// err is why the YAML text did not parse; reported with its path by Validate.
	err error
}

var labelName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// NewMatcher returns a matcher, compiling the regular expression of =~ and !~.
func NewMatcher(t MatchType, name, value string) (Matcher, error) {
	m := Matcher{Name: name, Type: t, Value: value}
	if !labelName.MatchString(name) {
		return m, fieldErr("name", "%q is not a label name", name)
	}
	switch t {
	case MatchEqual, MatchNotEqual:
	case MatchRegexp, MatchNotRegexp:
		re, err := regexp.Compile("^(?:" + value + ")$")
		if err != nil {
			return m, fieldErr("value", "bad regular expression %q: %v", value, err)
		}
		m.re = re
	default:
		return m, fieldErr("type", "unknown match type %d", int(t))
	}
	return m, nil
}

// ParseMatcher reads `name="value"` (or =, !=, =~, !~ with an unquoted value), the
// syntax of Alertmanager's matchers.
func ParseMatcher(s string) (Matcher, error) {
	s = strings.TrimSpace(s)
	i := strings.IndexAny(s, "=!")
	if i <= 0 {
		return Matcher{}, fieldErr("", "%q: want name, an operator (=, !=, =~, !~) and a value", s)
	}
	name, rest := strings.TrimSpace(s[:i]), s[i:]
	var t MatchType
	switch {
	case strings.HasPrefix(rest, "=~"):
		t, rest = MatchRegexp, rest[2:]
	case strings.HasPrefix(rest, "!~"):
		t, rest = MatchNotRegexp, rest[2:]
	case strings.HasPrefix(rest, "!="):
		t, rest = MatchNotEqual, rest[2:]
	case strings.HasPrefix(rest, "="):
		t, rest = MatchEqual, rest[1:]
	default:
		return Matcher{}, fieldErr("", "%q: want an operator =, !=, =~ or !~", s)
	}
	rest = strings.TrimSpace(rest)
	if strings.HasPrefix(rest, `"`) {
		v, err := strconv.Unquote(rest)
		if err != nil {
			return Matcher{}, fieldErr("", "%q: bad quoted value: %v", s, err)
		}
		rest = v
	}
	m, err := NewMatcher(t, name, rest)
	if err != nil {
		return m, fieldErr("", "%q: %v", s, err.(*FieldError).Reason)
	}
	return m, nil
}

// Matches reports whether v, the value of the matcher's label ("" when absent), matches.
func (m Matcher) Matches(v string) bool {
	switch m.Type {
	case MatchEqual:
		return v == m.Value
	case MatchNotEqual:
		return v != m.Value
	case MatchRegexp:
		return m.re != nil && m.re.MatchString(v)
	case MatchNotRegexp:
		return m.re != nil && !m.re.MatchString(v)
	}
	return false
}

func (m Matcher) String() string { return m.Name + m.Type.String() + strconv.Quote(m.Value) }

// apiMatcher is Alertmanager's API form of a matcher.
type apiMatcher struct {
	Name    string `json:"name"`
	Value   string `json:"value"`
	IsRegex bool   `json:"isRegex"`
	IsEqual *bool  `json:"isEqual,omitempty"`
}

// MarshalJSON writes Alertmanager's API form {"name","value","isRegex","isEqual"}.
func (m Matcher) MarshalJSON() ([]byte, error) {
	eq := m.Type == MatchEqual || m.Type == MatchRegexp
	return json.Marshal(apiMatcher{Name: m.Name, Value: m.Value, IsRegex: m.Type >= MatchRegexp, IsEqual: &eq})
}

// UnmarshalJSON reads Alertmanager's API form (isEqual defaults to true) or a string in
// ParseMatcher's syntax.
func (m *Matcher) UnmarshalJSON(data []byte) error {
	var s string
	if json.Unmarshal(data, &s) == nil {
		v, err := ParseMatcher(s)
		if err != nil {
			return err
		}
		*m = v
		return nil
	}
	var a apiMatcher
	if err := json.Unmarshal(data, &a); err != nil {
		return fieldErr("", "want a matcher object or string: %v", err)
	}
	eq := a.IsEqual == nil || *a.IsEqual
	t := map[[2]bool]MatchType{{false, true}: MatchEqual, {false, false}: MatchNotEqual, {true, true}: MatchRegexp, {true, false}: MatchNotRegexp}[[2]bool{a.IsRegex, eq}]
	v, err := NewMatcher(t, a.Name, a.Value)
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalYAML writes the matcher as a string.
func (m Matcher) MarshalYAML() (any, error) { return m.String(), nil }

// UnmarshalYAML reads a string in ParseMatcher's syntax. A string that does not parse
// is reported, with its path in the configuration, by Config.Validate and New.
func (m *Matcher) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		*m = Matcher{err: fmt.Errorf("line %d: a matcher is a string like 'severity=\"critical\"'", n.Line)}
		return nil
	}
	v, err := ParseMatcher(s)
	if err != nil {
		*m = Matcher{err: fmt.Errorf("line %d: %s", n.Line, err.(*FieldError).Reason)}
		return nil
	}
	*m = v
	return nil
}

// Matchers match when all of them match.
type Matchers []Matcher

// Matches reports whether every matcher matches labels.
func (ms Matchers) Matches(labels map[string]string) bool {
	for _, m := range ms {
		if !m.Matches(labels[m.Name]) {
			return false
		}
	}
	return true
}

// compile checks every matcher and compiles its regular expression, so that matchers
// written as struct literals work too.
func (ms Matchers) compile(field string) (Matchers, error) {
	out := make(Matchers, len(ms))
	for i, m := range ms {
		if m.err != nil {
			return nil, fieldErr(fmt.Sprintf("%s[%d]", field, i), "%v", m.err)
		}
		c, err := NewMatcher(m.Type, m.Name, m.Value)
		if err != nil {
			return nil, prefix(fmt.Sprintf("%s[%d]", field, i), err)
		}
		out[i] = c
	}
	return out, nil
}

// MustParseMatchers parses matchers in ParseMatcher's syntax and panics on an error;
// for defaults and tests.
func MustParseMatchers(ss ...string) Matchers {
	out := make(Matchers, len(ss))
	for i, s := range ss {
		m, err := ParseMatcher(s)
		if err != nil {
			panic(err)
		}
		out[i] = m
	}
	return out
}
