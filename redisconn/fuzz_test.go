package redisconn_test

import (
	"errors"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/llmfleet/llmfleet/redisconn"
)

// urlParts is a REDIS_URL assembled from pieces, so that the fuzz target
// knows which bytes are passwords whatever the fuzzer puts around them.
type urlParts struct {
	scheme, user, password, hosts, path, query, sentinelPassword string
	flags                                                        uint8
}

// The flags of urlParts.
const (
	withUser             uint8 = 1 << iota // "USER@" after the scheme
	withPassword                           // ":PASSWORD" after the user
	withSentinelPassword                   // sentinel_password=... in the query
	verbatim                               // scheme is the whole URL: no parts, no known password
)

func (p urlParts) String() string {
	if p.flags&verbatim != 0 {
		return p.scheme
	}
	var b strings.Builder
	b.WriteString(p.scheme + "://")
	if p.flags&withUser != 0 {
		b.WriteString(p.user)
		if p.flags&withPassword != 0 {
			b.WriteString(":" + p.password)
		}
		b.WriteString("@")
	}
	b.WriteString(p.hosts + p.path)
	q := p.query
	if p.flags&withSentinelPassword != 0 {
		if q != "" {
			q += "&"
		}
		q += "sentinel_password=" + p.sentinelPassword
	}
	if q != "" {
		b.WriteString("?" + q)
	}
	return b.String()
}

// FuzzParse checks, for any URL:
//
//   - Parse never panics and is deterministic; a failure is a *ParseError
//     whose message starts with REDIS_URL and shows the URL as Redact does;
//   - nothing of a password shows: the outcome (error text, Redact output,
//     and options other than the password fields) is the same when every
//     letter and digit of the passwords is replaced by another of its kind,
//     which keeps the URL's structure and percent-escapes as they were;
//   - a URL that parses has exactly the options of its Mode, the defaults
//     applied, and re-serialised from its options (user info escaped as
//     url.UserPassword does, addresses, master, database, the same query)
//     parses to the same options.
func FuzzParse(f *testing.F) {
	const pw = "s3cretPW42"
	for _, p := range []urlParts{
		{scheme: "redis", hosts: "localhost:6379", path: "/2"},
		{scheme: "redis", user: "", password: pw, hosts: "h:6380", path: "/1", flags: withUser | withPassword},
		{scheme: "redis", user: "alice", password: "s%2F3%40cr%3Aet", hosts: "h", path: "/0", flags: withUser | withPassword},
		{scheme: "rediss", user: "alice", password: pw, hosts: "redis.example.com:6380", path: "/0", query: "skip_verify=true", flags: withUser | withPassword},
		{scheme: "REDIS", user: "bob", hosts: "h", flags: withUser},
		{scheme: "redis", hosts: "h", query: "dial_timeout=3&read_timeout=6s&pool_size=many"},
		{scheme: "redis", hosts: "[::1]:6379", path: "/0"},
		{scheme: "redis", hosts: "[fe80::1%25eth0]", path: "/0"},
		{scheme: "redis", hosts: "h", query: "db=2"},
		{scheme: "redis", hosts: "h1,h2", password: pw, flags: withUser | withPassword},
		{scheme: "redis", hosts: "h:0"},
		{scheme: "redis", hosts: "h:6379:1"},
		{scheme: "redis", hosts: "[::1"},
		{scheme: "redis", hosts: "h", path: "/0/1"},
		{scheme: "redis", hosts: "h", path: "/-1"},
		{scheme: "redis", hosts: "h", query: "password=" + pw},
		{scheme: "redis", password: "pa/" + pw, hosts: "h:6379", path: "/0", flags: withUser | withPassword},
		{scheme: "redis", password: "pa?" + pw, hosts: "h:6379", path: "/0", flags: withUser | withPassword},
		{scheme: "redis", password: "pa#" + pw, hosts: "h:6379", path: "/0", flags: withUser | withPassword},
		{scheme: "redis", password: "pa@" + pw, hosts: "h", flags: withUser | withPassword},
		{scheme: "redis", password: "%zz" + pw, hosts: "h", flags: withUser | withPassword},
		{scheme: "redis", password: "pa ss" + pw, hosts: "h", flags: withUser | withPassword},
		{scheme: "redis", user: "us/er", password: pw, hosts: "h", flags: withUser | withPassword},
		{scheme: "redis", password: pw, hosts: "h", path: "/0#frag", flags: withUser | withPassword},
		{scheme: "redis", hosts: "h", query: "x=%zz"},
		{scheme: "redis-sentinel", hosts: "s1:26379,s2:26380,s3", path: "/mymaster"},
		{scheme: "redis-sentinel", user: "app", password: pw, hosts: "s1,s2", path: "/mymaster/1", query: "sentinel_username=watcher", sentinelPassword: "sp%40ss", flags: withUser | withPassword | withSentinelPassword},
		{scheme: "rediss-sentinel", hosts: "s1:26380", path: "/m%2Fx", sentinelPassword: pw, flags: withSentinelPassword},
		{scheme: "redis-sentinel", hosts: "[::1]:26379,[::2]", path: "/m"},
		{scheme: "redis-sentinel", password: pw, hosts: "s1:26379", flags: withUser | withPassword},
		{scheme: "redis-sentinel", hosts: "s1", path: "/m", query: "master=m&password=" + pw},
		{scheme: "redis-sentinel", hosts: "s1,,s2", path: "/m"},
		{scheme: "redis-sentinel", hosts: "s1", path: "/m/x"},
		{scheme: "redis-sentinel", hosts: "s1", path: "/m", query: "bogus=1", sentinelPassword: pw, flags: withSentinelPassword},
		{scheme: "redis-cluster", hosts: "n1:7000,n2:7001,n3"},
		{scheme: "redis-cluster", user: "app", password: pw, hosts: "n1:7000,n2:7000", query: "read_only=true", flags: withUser | withPassword},
		{scheme: "rediss-cluster", password: pw, hosts: "n1:7000", query: "skip_verify=true", flags: withUser | withPassword},
		{scheme: "rediss-cluster", hosts: "n1", query: "skip_verify=maybe"},
		{scheme: "redis-cluster", hosts: "n1", path: "/0"},
		{scheme: "redis-cluster", hosts: "n1", query: "addr=n2:7000"},
		{scheme: "redis-cluster"},
		{scheme: "http", password: pw, hosts: "h", flags: withUser | withPassword},
		{scheme: ""},
		{scheme: "localhost:6379", flags: verbatim},
		{scheme: ":" + pw + "@localhost:6379", flags: verbatim},
		{scheme: "unix:///tmp/redis.sock", flags: verbatim},
		{scheme: "redis:/" + pw + "@h", flags: verbatim},
		// Found by the fuzzer (fixed): an "@" in the query or after a
		// password with "/", "?" or "#" showed passwords in errors.
		{scheme: "redis-sentinel://s1:26379/mymaster?client_name=a@b&sentinel_password=SENTINELSECRET", flags: verbatim},
		{scheme: "redis-sentinel://app:masterpw@s1:26379/mymaster?sentinel_password=sent@nel99", flags: verbatim},
		{scheme: "redis://user:p@ss/w0rd@redis.example.com:6379/0", flags: verbatim},
		{scheme: "redis://user:p@ss?w0rd@redis.example.com:6379/0", flags: verbatim},
		{scheme: "redis://me@corp:pa/ssw0rd@host", flags: verbatim},
		{scheme: "0://00?@&sentinel_password=0", flags: verbatim},
		{scheme: "redis://@:0/@00", flags: verbatim},
		{scheme: "redis://0:@?0@00", flags: verbatim},
		{scheme: "redis-sentinel://@0/@", flags: verbatim},
	} {
		f.Add(p.scheme, p.user, p.password, p.hosts, p.path, p.query, p.sentinelPassword, p.flags)
	}
	f.Fuzz(func(t *testing.T, scheme, user, password, hosts, path, query, sentinelPassword string, flags uint8) {
		p := urlParts{scheme, user, password, hosts, path, query, sentinelPassword, flags}
		raw := p.String()
		c, err := redisconn.Parse(raw)
		c2, err2 := redisconn.Parse(raw)
		if errText(err) != errText(err2) || !reflect.DeepEqual(c, c2) {
			t.Fatalf("Parse(%q) twice: %v, then %v", raw, err, err2)
		}
		if err != nil {
			checkParseError(t, raw, err)
		} else {
			checkConfig(t, raw, c)
		}

		// The same URL with other passwords: nothing may change but the
		// password fields.
		if p.flags&verbatim != 0 {
			return
		}
		q := p
		q.password = rotate(p.password)
		if sp := sentinelPasswordOf(p.sentinelPassword); p.flags&withSentinelPassword != 0 &&
			slices.Contains(strings.Split(rawQuery(raw), "&"), "sentinel_password="+sp) {
			q.sentinelPassword = rotate(sp) + p.sentinelPassword[len(sp):]
		}
		other := q.String()
		if other == raw {
			return
		}
		oc, oerr := redisconn.Parse(other)
		if errText(err) != errText(oerr) {
			t.Errorf("the error depends on the password:\n  Parse(%q): %v\n  Parse(%q): %v", raw, err, other, oerr)
		}
		if a, b := redisconn.Redact(raw), redisconn.Redact(other); a != b {
			t.Errorf("Redact depends on the password:\n  Redact(%q) = %q\n  Redact(%q) = %q", raw, a, other, b)
		}
		if err == nil && oerr == nil && !reflect.DeepEqual(withoutPasswords(c), withoutPasswords(oc)) {
			t.Errorf("options other than the passwords depend on the password: %q and %q give\n  %+v\n  %+v", raw, other, c, oc)
		}
	})
}

// checkParseError checks the shape of Parse's error for raw.
func checkParseError(t *testing.T, raw string, err error) {
	t.Helper()
	var pe *redisconn.ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("Parse(%q) error %T %v is not a *ParseError", raw, err, err)
	}
	shown := raw
	if shown == "" {
		shown = redisconn.DefaultURL
	}
	if pe.URL != redisconn.Redact(shown) || pe.Reason == "" {
		t.Errorf("Parse(%q): ParseError URL %q, reason %q; want the URL as Redact shows it, %q, and a reason", raw, pe.URL, pe.Reason, redisconn.Redact(shown))
	}
	if !strings.HasPrefix(err.Error(), "REDIS_URL "+pe.URL+": ") {
		t.Errorf("Parse(%q) error %q does not start with REDIS_URL and the redacted URL", raw, err)
	}
}

// checkConfig checks an accepted URL's options and that they survive being
// written back as a URL.
func checkConfig(t *testing.T, raw string, c redisconn.Config) {
	t.Helper()
	scheme, _, _ := strings.Cut(strings.ToLower(raw), "://")
	if raw == "" {
		scheme = "redis"
	}
	var want redisconn.Mode
	switch strings.TrimPrefix(strings.TrimPrefix(scheme, "rediss"), "redis") {
	case "":
		want = redisconn.Single
	case "-sentinel":
		want = redisconn.Sentinel
	case "-cluster":
		want = redisconn.Cluster
	}
	tls := strings.HasPrefix(scheme, "rediss")
	ok := c.Mode == want
	switch c.Mode {
	case redisconn.Single:
		o := c.Single
		ok = ok && o != nil && c.Failover == nil && c.Cluster == nil &&
			o.ReadTimeout != 0 && o.WriteTimeout != 0 && o.DialerRetries != 0 && (o.TLSConfig != nil) == tls
	case redisconn.Sentinel:
		o := c.Failover
		ok = ok && o != nil && c.Single == nil && c.Cluster == nil && o.MasterName != "" && len(o.SentinelAddrs) > 0 &&
			o.ReadTimeout != 0 && o.WriteTimeout != 0 && o.DialerRetries != 0 && (o.TLSConfig != nil) == tls
	case redisconn.Cluster:
		o := c.Cluster
		ok = ok && o != nil && c.Single == nil && c.Failover == nil && len(o.Addrs) > 0 &&
			o.ReadTimeout != 0 && o.WriteTimeout != 0 && o.DialerRetries != 0 && (o.TLSConfig != nil) == tls
	}
	if !ok {
		t.Fatalf("Parse(%q) = mode %q (want %q, TLS %v) with options %+v", raw, c.Mode, want, tls, c)
	}

	again := reserialise(c, rawQuery(raw))
	c2, err := redisconn.Parse(again)
	if err != nil {
		t.Fatalf("Parse(%q) succeeded, but its options written back as %q do not parse: %v", raw, again, err)
	}
	if !reflect.DeepEqual(c, c2) {
		t.Errorf("Parse(%q) and Parse(%q), its options written back, differ:\n  %+v\n  %+v", raw, again, opts(c), opts(c2))
	}
}

// reserialise writes c back as a URL with the given raw query.
func reserialise(c redisconn.Config, rawQuery string) string {
	userinfo := func(user, password string) string {
		switch {
		case password != "":
			return url.UserPassword(user, password).String() + "@"
		case user != "":
			return url.User(user).String() + "@"
		}
		return ""
	}
	scheme := func(base string, tls bool) string {
		if tls {
			return "rediss" + base
		}
		return "redis" + base
	}
	var s string
	switch c.Mode {
	case redisconn.Single:
		o := c.Single
		s = scheme("", o.TLSConfig != nil) + "://" + userinfo(o.Username, o.Password) + o.Addr + "/" + strconv.Itoa(o.DB)
	case redisconn.Sentinel:
		o := c.Failover
		s = scheme("-sentinel", o.TLSConfig != nil) + "://" + userinfo(o.Username, o.Password) +
			strings.Join(o.SentinelAddrs, ",") + "/" + masterPath(o.MasterName) + "/" + strconv.Itoa(o.DB)
	case redisconn.Cluster:
		o := c.Cluster
		s = scheme("-cluster", o.TLSConfig != nil) + "://" + userinfo(o.Username, o.Password) + strings.Join(o.Addrs, ",")
	}
	if rawQuery != "" {
		s += "?" + rawQuery
	}
	return s
}

// masterPath escapes a master name for the path. An "@" is escaped too,
// though a path may hold one: Parse refuses an "@" after the addresses of a
// URL without user info (it reads as a misplaced password).
func masterPath(name string) string {
	return strings.ReplaceAll(url.PathEscape(name), "@", "%40")
}

// rawQuery returns the query of a URL that parsed: after the first "?"
// that follows the address list.
func rawQuery(raw string) string {
	_, rest, _ := strings.Cut(raw, "://")
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		return ""
	}
	_, q, _ := strings.Cut(rest[end:], "?")
	return q
}

// withoutPasswords returns a copy of c's options with the password fields
// cleared.
func withoutPasswords(c redisconn.Config) any {
	switch c.Mode {
	case redisconn.Single:
		o := *c.Single
		o.Password = ""
		return o
	case redisconn.Sentinel:
		o := *c.Failover
		o.Password, o.SentinelPassword = "", ""
		return o
	case redisconn.Cluster:
		o := *c.Cluster
		o.Password = ""
		return o
	}
	return nil
}

// opts returns c's options for a message.
func opts(c redisconn.Config) any {
	switch c.Mode {
	case redisconn.Single:
		return *c.Single
	case redisconn.Sentinel:
		return *c.Failover
	case redisconn.Cluster:
		return *c.Cluster
	}
	return c
}

// sentinelPasswordOf returns the password of "sentinel_password=" + v: up
// to an unescaped "&", which by URL syntax starts another option. It is a
// password only where that pair is an option of the URL's query, not when a
// "?" in the path, say, makes it part of another option.
func sentinelPasswordOf(v string) string {
	pw, _, _ := strings.Cut(v, "&")
	return pw
}

// rotate replaces each ASCII letter and digit of s by another of its kind
// (hex digits by hex digits, so percent-escapes stay valid) and leaves every
// other byte, so the URL it is part of keeps its structure.
func rotate(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case '0' <= c && c <= '9':
			b[i] = '0' + (c-'0'+3)%10
		case 'a' <= c && c <= 'f':
			b[i] = 'a' + (c-'a'+1)%6
		case 'A' <= c && c <= 'F':
			b[i] = 'A' + (c-'A'+1)%6
		case 'g' <= c && c <= 'z':
			b[i] = 'g' + (c-'g'+7)%20
		case 'G' <= c && c <= 'Z':
			b[i] = 'G' + (c-'G'+7)%20
		}
	}
	return string(b)
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
