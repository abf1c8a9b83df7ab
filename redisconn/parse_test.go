package redisconn_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llmfleet/llmfleet/redisconn"
)

// secret is the password in every test URL: no error may show it.
const secret = "s3cret"

func TestParseSingle(t *testing.T) {
	t.Parallel()
	type want struct {
		addr, user, password string
		db                   int
		tls, skipVerify      bool
		read, dial           time.Duration
	}
	for _, tc := range []struct {
		url  string
		want want
	}{
		{"", want{addr: "127.0.0.1:6379"}},
		{"redis://localhost:6379/2", want{addr: "localhost:6379", db: 2}},
		{"redis://h", want{addr: "h:6379"}},
		{"redis://", want{addr: "localhost:6379"}},
		{"REDIS://h:6380", want{addr: "h:6380"}},
		{"redis://:" + secret + "@h:6380/1", want{addr: "h:6380", password: secret, db: 1}},
		// An ACL user: the reason the client is built here, not by asynq.
		{"redis://alice:" + secret + "@h/0", want{addr: "h:6379", user: "alice", password: secret}},
		{"redis://alice:s%2F3%40cr%3Aet@h/0", want{addr: "h:6379", user: "alice", password: "s/3@cr:et"}},
		{"rediss://alice:" + secret + "@redis.example.com:6380/0", want{addr: "redis.example.com:6380", user: "alice", password: secret, tls: true}},
		{"rediss://h?skip_verify=true", want{addr: "h:6379", tls: true, skipVerify: true}},
		{"redis://h?dial_timeout=3&read_timeout=6s", want{addr: "h:6379", dial: 3 * time.Second, read: 6 * time.Second}},
		{"redis://[::1]:6379/0", want{addr: "[::1]:6379"}},
		{"redis://[::1]/0", want{addr: "[::1]:6379"}},
	} {
		t.Run(tc.url, func(t *testing.T) {
			t.Parallel()
			c, err := redisconn.Parse(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			if c.Mode != redisconn.Single || c.Single == nil || c.Failover != nil || c.Cluster != nil {
				t.Fatalf("mode %s, options %+v", c.Mode, c)
			}
			o := c.Single
			w := tc.want
			if w.read == 0 {
				w.read = 10 * time.Second // our default
			}
			if o.Addr != w.addr || o.Username != w.user || o.Password != w.password || o.DB != w.db {
				t.Errorf("addr %q user %q password %q db %d, want %+v", o.Addr, o.Username, o.Password, o.DB, w)
			}
			if (o.TLSConfig != nil) != w.tls || (w.tls && o.TLSConfig.InsecureSkipVerify != w.skipVerify) {
				t.Errorf("TLS config %+v, want TLS %v skip_verify %v", o.TLSConfig, w.tls, w.skipVerify)
			}
			if o.ReadTimeout != w.read || o.WriteTimeout != 10*time.Second || o.DialerRetries != 2 {
				t.Errorf("read timeout %s write timeout %s dialer retries %d", o.ReadTimeout, o.WriteTimeout, o.DialerRetries)
			}
			if w.dial != 0 && o.DialTimeout != w.dial {
				t.Errorf("dial timeout %s, want %s", o.DialTimeout, w.dial)
			}
		})
	}
}

func TestParseSentinel(t *testing.T) {
	t.Parallel()
	type want struct {
		sentinels                      []string
		master                         string
		db                             int
		user, password                 string
		sentinelUser, sentinelPassword string
		tls                            bool
		dial                           time.Duration
	}
	for _, tc := range []struct {
		url  string
		want want
	}{
		{"redis-sentinel://s1:26379,s2:26380,s3/mymaster", want{sentinels: []string{"s1:26379", "s2:26380", "s3:26379"}, master: "mymaster"}},
		{"redis-sentinel://s1/mymaster/3", want{sentinels: []string{"s1:26379"}, master: "mymaster", db: 3}},
		{"redis-sentinel://app:" + secret + "@s1,s2/mymaster/1?sentinel_username=watcher&sentinel_password=sp%40ss",
			want{sentinels: []string{"s1:26379", "s2:26379"}, master: "mymaster", db: 1, user: "app", password: secret, sentinelUser: "watcher", sentinelPassword: "sp@ss"}},
		{"redis-sentinel://:" + secret + "@s1/m?dial_timeout=2s", want{sentinels: []string{"s1:26379"}, master: "m", password: secret, dial: 2 * time.Second}},
		{"rediss-sentinel://s1:26380/m", want{sentinels: []string{"s1:26380"}, master: "m", tls: true}},
		{"redis-sentinel://[::1]:26379,[::2]/m", want{sentinels: []string{"[::1]:26379", "[::2]:26379"}, master: "m"}},
	} {
		t.Run(tc.url, func(t *testing.T) {
			t.Parallel()
			c, err := redisconn.Parse(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			if c.Mode != redisconn.Sentinel || c.Failover == nil || c.Single != nil || c.Cluster != nil {
				t.Fatalf("mode %s, options %+v", c.Mode, c)
			}
			o, w := c.Failover, tc.want
			if !slices.Equal(o.SentinelAddrs, w.sentinels) || o.MasterName != w.master || o.DB != w.db {
				t.Errorf("sentinels %q master %q db %d, want %q %q %d", o.SentinelAddrs, o.MasterName, o.DB, w.sentinels, w.master, w.db)
			}
			if o.Username != w.user || o.Password != w.password || o.SentinelUsername != w.sentinelUser || o.SentinelPassword != w.sentinelPassword {
				t.Errorf("master user %q password %q, sentinel user %q password %q; want %+v", o.Username, o.Password, o.SentinelUsername, o.SentinelPassword, w)
			}
			if (o.TLSConfig != nil) != w.tls {
				t.Errorf("TLS config %+v, want TLS %v", o.TLSConfig, w.tls)
			}
			if w.dial != 0 && o.DialTimeout != w.dial {
				t.Errorf("dial timeout %s, want %s", o.DialTimeout, w.dial)
			}
			if o.ReadTimeout != 10*time.Second || o.DialerRetries != 2 {
				t.Errorf("defaults not applied: read timeout %s, dialer retries %d", o.ReadTimeout, o.DialerRetries)
			}
		})
	}
}

func TestParseCluster(t *testing.T) {
	t.Parallel()
	type want struct {
		nodes           []string
		user, password  string
		tls, skipVerify bool
		readOnly        bool
	}
	for _, tc := range []struct {
		url  string
		want want
	}{
		{"redis-cluster://n1:7000,n2:7001,n3", want{nodes: []string{"n1:7000", "n2:7001", "n3:6379"}}},
		{"redis-cluster://n1:7000/", want{nodes: []string{"n1:7000"}}},
		{"redis-cluster://app:" + secret + "@n1:7000,n2:7000?read_only=true", want{nodes: []string{"n1:7000", "n2:7000"}, user: "app", password: secret, readOnly: true}},
		{"rediss-cluster://:" + secret + "@n1:7000,n2:7000", want{nodes: []string{"n1:7000", "n2:7000"}, password: secret, tls: true}},
		{"rediss-cluster://n1:7000?skip_verify=true", want{nodes: []string{"n1:7000"}, tls: true, skipVerify: true}},
	} {
		t.Run(tc.url, func(t *testing.T) {
			t.Parallel()
			c, err := redisconn.Parse(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			if c.Mode != redisconn.Cluster || c.Cluster == nil || c.Single != nil || c.Failover != nil {
				t.Fatalf("mode %s, options %+v", c.Mode, c)
			}
			o, w := c.Cluster, tc.want
			if !slices.Equal(o.Addrs, w.nodes) || o.Username != w.user || o.Password != w.password || o.ReadOnly != w.readOnly {
				t.Errorf("nodes %q user %q password %q read_only %v, want %+v", o.Addrs, o.Username, o.Password, o.ReadOnly, w)
			}
			if (o.TLSConfig != nil) != w.tls || (w.tls && o.TLSConfig.InsecureSkipVerify != w.skipVerify) {
				t.Errorf("TLS config %+v, want TLS %v skip_verify %v", o.TLSConfig, w.tls, w.skipVerify)
			}
			if o.ReadTimeout != 10*time.Second || o.DialerRetries != 2 {
				t.Errorf("defaults not applied: read timeout %s, dialer retries %d", o.ReadTimeout, o.DialerRetries)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		url  string
		want string // fragment of the message
	}{
		{"localhost:6379", "must start with a scheme"},
		{":" + secret + "@localhost:6379", "must start with a scheme"},
		{"http://:" + secret + "@h", `scheme "http" is not one of`},
		{"unix:///tmp/redis.sock", `scheme "unix" is not one of`},
		{"redis://:" + secret + "@h1,h2", "takes one address, got 2: use redis-cluster://"},
		{"redis://:" + secret + "@h:abc", `address "h:abc": port must be a number`},
		{"redis://h:0", "port must be a number from 1 to 65535"},
		{"redis://h:65536", "port must be a number from 1 to 65535"},
		{"redis://h:6379:1", "is not host:port"},
		{"redis://::1", "is not host:port"},
		{"redis://[::1", "missing ]"},
		{"redis://[::1]x", "is not host:port"},
		{"redis://:" + secret + "@h/x", `database "x" is not a number`},
		{"redis://h/-1", `database "-1" is not a number from 0 up`},
		{"redis://h/0/1", "only a database number may follow the address"},
		{"redis://:" + secret + "@h?bogus=1", "unexpected option: bogus"},
		{"redis://h?password=" + secret, "unexpected option: password"},
		{"redis://h?pool_size=many", "invalid pool_size number"},
		// Unescaped special characters in a password: the message cannot
		// quote the password, so it says how to fix it.
		{"redis://:pa/" + secret + "@h:6379/0", "percent-encode"},
		{"redis://:pa?" + secret + "@h:6379/0", "percent-encode"},
		{"redis://:pa#" + secret + "@h:6379/0", "percent-encode"},
		{"redis://:%zz" + secret + "@h", "percent-encode"},
		{"redis://:" + secret + "@h/0#frag", "fragment"},
		{"redis://h?x=%zz", "query (after ?) is not valid"},
		{"redis-sentinel://:" + secret + "@s1:26379", "no master name"},
		{"redis-sentinel://s1:26379/", "no master name"},
		{"redis-sentinel://s1/m/x", `database "x" is not a number`},
		{"redis-sentinel://s1/m/1/2", "expected /MASTER or /MASTER/DB"},
		// asynq's form (?master=, password meaning the sentinels'): refused
		// rather than read differently.
		{"redis-sentinel://:" + secret + "@s1:26379?master=mymaster", "the master name goes in the path"},
		{"redis-sentinel://s1/m?master_name=m", "the master name goes in the path"},
		{"redis-sentinel://s1/m?password=" + secret, "option password is not accepted"},
		{"redis-sentinel://s1/m?addr=s2:26379", "option addr is not accepted"},
		{"redis-sentinel://s1/m?db=2", "option db is not accepted"},
		{"redis-sentinel:///m", "no address"},
		{"redis-sentinel://s1,,s2/m", "empty address"},
		{"redis-sentinel://s1,/m", "empty address"},
		{"redis-sentinel://s1/m?skip_verify=true", "unexpected option: skip_verify"},
		{"redis-sentinel://s1/m?sentinel_password=" + secret + "&bogus=1", "unexpected option: bogus"},
		{"redis-cluster://:" + secret + "@n1/0", "a cluster has only database 0"},
		{"redis-cluster://n1?addr=n2:7000", "option addr is not accepted"},
		{"redis-cluster://n1?pool_size=x", "invalid pool_size number"},
		{"rediss-cluster://n1?skip_verify=maybe", `skip_verify: "maybe" is not true or false`},
		{"redis-cluster://n1?skip_verify=true", "unexpected option: skip_verify"},
		{"redis-cluster://", "no address"},
		{"redis-cluster://n1:x,n2", `address "n1:x": port must be a number`},
	} {
		t.Run(tc.url, func(t *testing.T) {
			t.Parallel()
			_, err := redisconn.Parse(tc.url)
			if err == nil {
				t.Fatal("accepted")
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.want) {
				t.Errorf("error %q does not say %q", msg, tc.want)
			}
			if !strings.HasPrefix(msg, "REDIS_URL ") {
				t.Errorf("error %q does not name REDIS_URL", msg)
			}
			if strings.Contains(msg, secret) {
				t.Errorf("error shows the password: %q", msg)
			}
			var pe *redisconn.ParseError
			if !errors.As(err, &pe) {
				t.Errorf("error %T is not a *ParseError", err)
			}
			// Open refuses it the same way.
			if rdb, err := redisconn.Open(tc.url); err == nil {
				rdb.Close()
				t.Error("Open accepted it")
			}
		})
	}
}

// Client builds the client of each mode without connecting.
func TestConfigClient(t *testing.T) {
	t.Parallel()
	for url, want := range map[string]string{
		"redis://h:6379/0":                   "*redis.Client",
		"redis-sentinel://s1:26379/mymaster": "*redis.Client",
		"redis-cluster://n1:7000,n2:7001":    "*redis.ClusterClient",
	} {
		rdb, err := redisconn.Open(url)
		if err != nil {
			t.Fatal(err)
		}
		var got string
		switch rdb.(type) {
		case *redis.Client:
			got = "*redis.Client"
		case *redis.ClusterClient:
			got = "*redis.ClusterClient"
		}
		if got != want {
			t.Errorf("%s: client %T, want %s", url, rdb, want)
		}
		rdb.Close()
	}
}

// An "@" in the query, or after a password cut short by "/" or "?", never
// shows a password: neither in Redact nor in Parse's error.
func TestAtSignsNeverShowAPassword(t *testing.T) {
	t.Parallel()
	for raw, secret := range map[string]string{
		"redis-sentinel://s1:26379/mymaster?client_name=a@b&sentinel_password=SENTINELSECRET": "SENTINELSECRET",
		"redis-sentinel://app:masterpw@s1:26379/mymaster?sentinel_password=sent@nel99":        "nel99",
		"redis://user:p@ss/w0rd@redis.example.com:6379/0":                                     "w0rd",
		"redis://user:p@ss?w0rd@redis.example.com:6379/0":                                     "w0rd",
		"redis://me@corp:pa/ssw0rd@host":                                                      "ssw0rd",
	} {
		if got := redisconn.Redact(raw); strings.Contains(got, secret) {
			t.Errorf("Redact(%q) = %q shows %q", raw, got, secret)
		}
		_, err := redisconn.Parse(raw)
		if err == nil {
			t.Errorf("Parse(%q) accepted an unescaped @ after the address", raw)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("Parse(%q) error %q shows %q", raw, err, secret)
		}
		if !strings.Contains(err.Error(), "%40") {
			t.Errorf("Parse(%q) error %q does not say how to fix it", raw, err)
		}
	}
}

// The database may not be negative, in the path or as an option.
func TestNegativeDatabaseIsRefused(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{"redis://h/-1", "redis://h?db=-1", "redis://h?db=x"} {
		if _, err := redisconn.Parse(raw); err == nil || !strings.Contains(err.Error(), "from 0 up") {
			t.Errorf("Parse(%q) = %v, want a database that is not a number from 0 up refused", raw, err)
		}
	}
}

// A password that looks like an option ("&password=") is still the user
// info's: Redact masks all of it.
func TestRedactMasksOptionLikePasswords(t *testing.T) {
	t.Parallel()
	if got := redisconn.Redact("redis://:abc&password=s3cr@host:6379/0"); got != "redis://:xxxxx@host:6379/0" {
		t.Errorf("Redact = %q, want the whole password masked", got)
	}
}
