package redisconn

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Mode is the kind of Redis deployment a URL names.
type Mode string

// The modes, one per URL scheme family.
const (
	Single   Mode = "single"   // redis://, rediss://
	Sentinel Mode = "sentinel" // redis-sentinel://, rediss-sentinel://
	Cluster  Mode = "cluster"  // redis-cluster://, rediss-cluster://
)

// Config is a parsed REDIS_URL: the go-redis options of its Mode. Exactly
// one of Single, Failover and Cluster is set.
type Config struct {
	Mode     Mode
	Single   *redis.Options
	Failover *redis.FailoverOptions
	Cluster  *redis.ClusterOptions
}

// Client returns a new client for c: a *redis.Client for Single and
// Sentinel (go-redis's failover client follows the master through
// failovers), a *redis.ClusterClient for Cluster.
func (c Config) Client() redis.UniversalClient {
	switch c.Mode {
	case Sentinel:
		return redis.NewFailoverClient(c.Failover)
	case Cluster:
		return redis.NewClusterClient(c.Cluster)
	default:
		return redis.NewClient(c.Single)
	}
}

// Default ports of a Redis server and of a sentinel.
const (
	redisPort    = "6379"
	sentinelPort = "26379"
)

// ParseError is a REDIS_URL that cannot be used. Its message names the
// part that is wrong and shows the URL redacted.
type ParseError struct {
	// URL is the redacted URL.
	URL string
	// Reason says what is wrong.
	Reason string
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("REDIS_URL %s: %s", e.URL, e.Reason)
}

// errSpecial is the reason given when the user info cannot be located or
// parsed: the message cannot quote it, since it holds a password.
const errAt = "an unescaped @ after the address: percent-encode @ as %40 in the user name, password, options and master name (and / ? # : % and spaces in a password)"

const errSpecial = "the user name or password is not valid in a URL: percent-encode / ? # @ : % and spaces in it (or use a URL-safe password, e.g. from `openssl rand -hex 32`)"

// Parse parses rawURL ("" means DefaultURL) into go-redis options, without
// connecting. See the package doc for the accepted forms.
func Parse(rawURL string) (Config, error) {
	if rawURL == "" {
		rawURL = DefaultURL
	}
	fail := func(format string, args ...any) (Config, error) {
		return Config{}, &ParseError{URL: Redact(rawURL), Reason: fmt.Sprintf(format, args...)}
	}
	p, reason := split(rawURL)
	if reason != "" {
		return fail("%s", reason)
	}
	tls := strings.HasPrefix(p.scheme, "rediss")
	base := "redis"
	if tls {
		base = "rediss"
	}
	var c Config
	var err error
	switch p.scheme {
	case "redis", "rediss":
		if len(p.hosts) > 1 {
			return fail("%s:// takes one address, got %d: use redis-cluster:// for a cluster or redis-sentinel:// for sentinels", p.scheme, len(p.hosts))
		}
		c.Mode = Single
		c.Single, err = p.single()
	case "redis-sentinel", "rediss-sentinel":
		c.Mode = Sentinel
		c.Failover, err = p.failover(base)
	case "redis-cluster", "rediss-cluster":
		c.Mode = Cluster
		c.Cluster, err = p.cluster(base)
	}
	if err != nil {
		var reason reasonError
		if errors.As(err, &reason) {
			return fail("%s", string(reason))
		}
		// go-redis's own messages name an option or a number, never a
		// password; a *url.Error quotes the whole URL, so it is not passed on.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			return fail("not a valid URL")
		}
		return fail("%s", strings.TrimPrefix(err.Error(), "redis: "))
	}
	c.setDefaults()
	return c, nil
}

// reasonError is a message of ours, safe to show.
type reasonError string

func (e reasonError) Error() string { return string(e) }

func (c *Config) setDefaults() {
	set := func(read, write *time.Duration, retries *int) {
		if *read == 0 {
			*read = defaultReadTimeout
		}
		if *write == 0 {
			*write = defaultWriteTimeout
		}
		if *retries == 0 {
			*retries = defaultDialerRetries
		}
	}
	switch c.Mode {
	case Single:
		set(&c.Single.ReadTimeout, &c.Single.WriteTimeout, &c.Single.DialerRetries)
	case Sentinel:
		set(&c.Failover.ReadTimeout, &c.Failover.WriteTimeout, &c.Failover.DialerRetries)
	case Cluster:
		set(&c.Cluster.ReadTimeout, &c.Cluster.WriteTimeout, &c.Cluster.DialerRetries)
	}
}

// parts is a URL split by hand: url.Parse accepts one host only.
type parts struct {
	scheme string
	user   *url.Userinfo // nil without user info
	hosts  []string      // host:port, default port filled in
	path   []string      // unescaped path segments
	query  url.Values
}

// split cuts rawURL into its parts and validates the addresses. It returns
// a reason on failure, never quoting the user info.
func split(rawURL string) (parts, string) {
	var p parts
	scheme, rest, ok := strings.Cut(rawURL, "://")
	if !ok || scheme == "" {
		return p, `not a URL: it must start with a scheme such as redis:// (e.g. redis://127.0.0.1:6379/0)`
	}
	p.scheme = strings.ToLower(scheme)
	switch p.scheme {
	case "redis", "rediss", "redis-sentinel", "rediss-sentinel", "redis-cluster", "rediss-cluster":
	default:
		return p, fmt.Sprintf("scheme %q is not one of redis, rediss, redis-sentinel, rediss-sentinel, redis-cluster, rediss-cluster", scheme)
	}
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], rest[end:]
	if strings.Contains(tail, "@") {
		// "redis://:pa/ss@host", "redis://u:p@ss/w0rd@host": the user info
		// was cut short by a character that ends a URL's authority, and
		// what follows must not be quoted as a path, an option or an
		// address. An "@" in a query value or a master name is refused
		// for the same reason: it is not where a URL can tell.
		return p, errAt
	}
	if at := strings.LastIndexByte(authority, '@'); at >= 0 {
		u, err := url.Parse("redis://" + authority[:at+1] + "host")
		if err != nil || u.User == nil {
			return p, errSpecial
		}
		p.user = u.User
		authority = authority[at+1:]
	}
	if strings.Contains(tail, "#") {
		return p, "a URL fragment (#...) has no meaning here; percent-encode a # in a password as %23"
	}
	port := redisPort
	if strings.HasSuffix(p.scheme, "-sentinel") {
		port = sentinelPort
	}
	if authority == "" {
		if p.scheme != "redis" && p.scheme != "rediss" {
			return p, "no address: give host:port after " + scheme + "://"
		}
		authority = "localhost" // go-redis's default for one server
	}
	for a := range strings.SplitSeq(authority, ",") {
		addr, reason := hostPort(a, port)
		if reason != "" {
			return p, reason
		}
		p.hosts = append(p.hosts, addr)
	}
	path, rawQuery, _ := strings.Cut(tail, "?")
	for s := range strings.SplitSeq(path, "/") {
		if s == "" {
			continue
		}
		seg, err := url.PathUnescape(s)
		if err != nil {
			return p, fmt.Sprintf("path segment %q is not valid URL escaping", s)
		}
		p.path = append(p.path, seg)
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		// The query may hold sentinel_password: not quoted.
		return p, "the query (after ?) is not valid URL escaping"
	}
	p.query = q
	return p, ""
}

// hostPort validates one address and fills in the default port.
func hostPort(a, defaultPort string) (string, string) {
	if a == "" {
		return "", "empty address in the list of hosts (a stray comma?)"
	}
	host, port := a, defaultPort
	if strings.HasPrefix(a, "[") { // IPv6 literal
		h, rest, ok := strings.Cut(a[1:], "]")
		if !ok {
			return "", fmt.Sprintf("address %q: missing ] after an IPv6 address", a)
		}
		host = h
		if rest != "" {
			p, ok := strings.CutPrefix(rest, ":")
			if !ok {
				return "", fmt.Sprintf("address %q is not host:port", a)
			}
			port = p
		}
	} else if h, p, found := strings.Cut(a, ":"); found {
		if strings.Contains(p, ":") {
			return "", fmt.Sprintf("address %q is not host:port (an IPv6 address goes in brackets: [::1]:6379)", a)
		}
		host, port = h, p
	}
	if host == "" {
		host = "localhost" // as go-redis does
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Sprintf("address %q: port must be a number from 1 to 65535", a)
	}
	return net.JoinHostPort(host, port), ""
}

// goRedisURL writes a one-host URL in go-redis's syntax for its parsers.
func goRedisURL(scheme, host string, user *url.Userinfo, path string, q url.Values) string {
	u := url.URL{Scheme: scheme, Host: host, User: user, Path: path, RawQuery: q.Encode()}
	return u.String()
}

func (p parts) single() (*redis.Options, error) {
	path := ""
	switch len(p.path) {
	case 0:
	case 1:
		if n, err := strconv.Atoi(p.path[0]); err != nil || n < 0 {
			return nil, reasonError(fmt.Sprintf("database %q is not a number from 0 up", p.path[0]))
		}
		path = "/" + p.path[0]
	default:
		return nil, reasonError(fmt.Sprintf("path /%s: only a database number may follow the address", strings.Join(p.path, "/")))
	}
	if v := p.query.Get("db"); p.query.Has("db") {
		if n, err := strconv.Atoi(v); err != nil || n < 0 {
			return nil, reasonError(fmt.Sprintf("option db=%q is not a number from 0 up", v))
		}
	}
	return redis.ParseURL(goRedisURL(p.scheme, p.hosts[0], p.user, path, p.query))
}

// failover reads redis-sentinel://[USER:PASSWORD@]SENTINELS/MASTER[/DB].
func (p parts) failover(base string) (*redis.FailoverOptions, error) {
	q := cloneValues(p.query)
	for _, k := range []string{"master", "master_name"} {
		if q.Has(k) {
			return nil, reasonError(fmt.Sprintf("option %s: the master name goes in the path, e.g. %s://host:26379/mymaster", k, p.scheme))
		}
	}
	if len(p.path) == 0 {
		return nil, reasonError("no master name: give it as the path, e.g. " + p.scheme + "://host:26379/mymaster")
	}
	if len(p.path) > 2 {
		return nil, reasonError(fmt.Sprintf("path /%s: expected /MASTER or /MASTER/DB", strings.Join(p.path, "/")))
	}
	db := "0"
	if len(p.path) == 2 {
		if n, err := strconv.Atoi(p.path[1]); err != nil || n < 0 {
			return nil, reasonError(fmt.Sprintf("database %q is not a number from 0 up", p.path[1]))
		}
		db = p.path[1]
	}
	for _, k := range []string{"addr", "db", "username", "password"} {
		if q.Has(k) {
			return nil, reasonError(fmt.Sprintf("option %s is not accepted: sentinels go in the host list, the database in the path, the master's user and password in the user info", k))
		}
	}
	sentinelUser, sentinelPassword := q.Get("sentinel_username"), q.Get("sentinel_password")
	q.Del("sentinel_username")
	q.Del("sentinel_password")
	q.Set("master_name", p.path[0])
	for _, h := range p.hosts[1:] {
		q.Add("addr", h)
	}
	o, err := redis.ParseFailoverURL(goRedisURL(base, p.hosts[0], nil, "/"+db, q))
	if err != nil {
		return nil, err
	}
	if p.user != nil {
		o.Username = p.user.Username()
		o.Password, _ = p.user.Password()
	}
	o.SentinelUsername, o.SentinelPassword = sentinelUser, sentinelPassword
	return o, nil
}

// cluster reads redis-cluster://[USER:PASSWORD@]NODES.
func (p parts) cluster(base string) (*redis.ClusterOptions, error) {
	if len(p.path) > 0 {
		return nil, reasonError(fmt.Sprintf("path /%s: a cluster has only database 0, so its URL has no path", strings.Join(p.path, "/")))
	}
	q := cloneValues(p.query)
	if q.Has("addr") {
		return nil, reasonError("option addr is not accepted: list the nodes as host1:6379,host2:6379")
	}
	// go-redis's cluster parser has no skip_verify; its others do.
	skipVerify := false
	if base == "rediss" && q.Has("skip_verify") {
		v, err := strconv.ParseBool(q.Get("skip_verify"))
		if err != nil {
			return nil, reasonError(fmt.Sprintf("option skip_verify: %q is not true or false", q.Get("skip_verify")))
		}
		skipVerify = v
		q.Del("skip_verify")
	}
	for _, h := range p.hosts[1:] {
		q.Add("addr", h)
	}
	o, err := redis.ParseClusterURL(goRedisURL(base, p.hosts[0], p.user, "", q))
	if err != nil {
		return nil, err
	}
	if o.TLSConfig != nil {
		o.TLSConfig.InsecureSkipVerify = skipVerify
	}
	return o, nil
}

func cloneValues(v url.Values) url.Values {
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}
