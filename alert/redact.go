package alert

import (
	"net/url"
	"slices"
	"strings"
)

const redacted = "<redacted>"

// RedactURL returns u with everything that may be a secret — user info, path, query
// and fragment — replaced: "https://hooks.slack.com/<redacted>". Webhook services put
// their token in the path.
func RedactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.Host == "" {
		return redacted
	}
	out := p.Scheme + "://" + p.Host
	if p.User != nil || (p.Path != "" && p.Path != "/") || p.RawQuery != "" || p.Fragment != "" {
		out += "/" + redacted
	}
	return out
}

// urlSecrets lists the parts of a URL and of header values that must not be shown.
func urlSecrets(u string, headers map[string]string) []string {
	var out []string
	if u != "" {
		out = append(out, u)
		if p, err := url.Parse(u); err == nil {
			if p.Path != "" && p.Path != "/" {
				out = append(out, p.EscapedPath(), p.Path)
			}
			if p.RawQuery != "" {
				out = append(out, p.RawQuery)
			}
			if p.User != nil {
				out = append(out, p.User.String())
			}
		}
	}
	for _, v := range headers {
		if len(v) >= 4 {
			out = append(out, v)
			if _, tok, ok := strings.Cut(v, " "); ok && len(tok) >= 4 {
				out = append(out, tok)
			}
		}
	}
	return out
}

// redactText replaces every secret in s; longer secrets first, so a URL goes as a
// whole before its path does. The full URLs become their RedactURL form.
func redactText(s string, secrets []string) string {
	if s == "" || len(secrets) == 0 {
		return s
	}
	ss := slices.Clone(secrets)
	slices.SortFunc(ss, func(a, b string) int { return len(b) - len(a) })
	for _, sec := range ss {
		if sec == "" {
			continue
		}
		repl := redacted
		if strings.Contains(sec, "://") {
			repl = RedactURL(sec)
		}
		s = strings.ReplaceAll(s, sec, repl)
	}
	return s
}

func redactURLText(s, u string) string { return redactText(s, urlSecrets(u, nil)) }
