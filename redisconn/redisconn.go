// Package redisconn turns a REDIS_URL into a go-redis client that asynq and
// the checkpoint share.
//
// URLs are parsed with go-redis rather than asynq's ParseRedisURI, which
// drops an ACL username: asynq is handed the client instead
// (NewClientFromRedisClient and friends).
package redisconn

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultURL is used when neither --redis nor REDIS_URL is set.
const DefaultURL = "redis://127.0.0.1:6379/0"

// Open parses rawURL (redis:// or rediss:// for TLS, user and password in
// the URL) and returns a client. It does not connect.
func Open(rawURL string) (redis.UniversalClient, error) {
	if rawURL == "" {
		rawURL = DefaultURL
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL is not a URL: %s", Redact(rawURL))
	}
	switch u.Scheme {
	case "redis", "rediss":
	default:
		return nil, fmt.Errorf("REDIS_URL %s: scheme must be redis:// or rediss://, got %q", Redact(rawURL), u.Scheme)
	}
	opt, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL %s: %w", Redact(rawURL), err)
	}
	opt.DialerRetries = 2
	opt.ReadTimeout = 10 * time.Second
	opt.WriteTimeout = 10 * time.Second
	return redis.NewClient(opt), nil
}

// Ping checks that Redis answers, with an error that names the server
// without its password.
func Ping(ctx context.Context, rdb redis.UniversalClient, rawURL string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		if rawURL == "" {
			rawURL = DefaultURL
		}
		return fmt.Errorf("redis at %s unreachable: %w", Redact(rawURL), err)
	}
	return nil
}

// Redact returns the URL with its password masked, for messages and logs.
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparseable URL)"
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}
