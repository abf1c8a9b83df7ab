package redisconn

import (
	"net/url"
	"regexp"
	"strings"
)

// mask replaces every password in a redacted URL.
const mask = "xxxxx"

// passwordOptionRE is a query option whose name holds "password", with its
// value up to the next "&" (a "#" or "@" in it is still the password's).
var passwordOptionRE = regexp.MustCompile(`(?i)([?&][^=&?#]*password[^=&]*=)[^&]*`)

// Redact returns rawURL with every password masked (the user info's and any
// query option whose name contains "password", such as sentinel_password),
// for messages and logs. It works on text, not on a parsed URL, so that even
// a URL too malformed to parse (a password with an unescaped "/" or "@", say)
// never shows its password: everything between "://" and the last "@" but
// the user name counts as user info.
func Redact(rawURL string) string {
	scheme, rest, ok := strings.Cut(rawURL, "://")
	if !ok {
		if strings.Contains(rawURL, "@") {
			return "(not a URL)"
		}
		return passwordOptionRE.ReplaceAllString(rawURL, "${1}"+mask)
	}
	// Password options first, from the first "?" on: an "@" in the query,
	// a client name's or the password's own, must not move the user info's
	// end past them, and user info without a "?" is not read as options.
	if q := strings.IndexByte(rest, '?'); q >= 0 {
		rest = rest[:q] + passwordOptionRE.ReplaceAllString(rest[q:], "${1}"+mask)
	}
	var b strings.Builder
	b.WriteString(scheme)
	b.WriteString("://")
	if at := strings.LastIndexByte(rest, '@'); at >= 0 {
		user, _, hasPassword := strings.Cut(rest[:at], ":")
		// A user name cut at a "/", "?" or "#" means the user info was not
		// where a URL puts it: show none of it.
		if strings.ContainsAny(user, "/?#") {
			user = mask
		}
		b.WriteString(user)
		if hasPassword {
			b.WriteString(":" + mask)
		}
		b.WriteByte('@')
		rest = rest[at+1:]
	}
	base, query, hasQuery := strings.Cut(rest, "?")
	b.WriteString(base)
	if !hasQuery {
		return b.String()
	}
	b.WriteByte('?')
	for i, kv := range strings.Split(query, "&") {
		if i > 0 {
			b.WriteByte('&')
		}
		k, _, hasValue := strings.Cut(kv, "=")
		if name, err := url.QueryUnescape(k); err == nil {
			k = name
		}
		if hasValue && strings.Contains(strings.ToLower(k), "password") {
			kv = url.QueryEscape(k) + "=" + mask
		}
		b.WriteString(kv)
	}
	return b.String()
}
