package redisconn

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultURL is used when neither --redis nor REDIS_URL is set.
const DefaultURL = "redis://127.0.0.1:6379/0"

// Timeouts applied when the URL does not set them: asynq's scripts and the
// checkpoint's can take longer than go-redis's 3 s default on a busy server,
// and a dial is retried a couple of times before the caller hears of it.
const (
	defaultReadTimeout   = 10 * time.Second
	defaultWriteTimeout  = 10 * time.Second
	defaultDialerRetries = 2
)

// Open parses rawURL (see the package doc for the accepted forms; "" means
// DefaultURL) and returns a client for it: a *redis.Client for one server
// or through Sentinel, a *redis.ClusterClient for a cluster. It does not
// connect; Ping does.
func Open(rawURL string) (redis.UniversalClient, error) {
	c, err := Parse(rawURL)
	if err != nil {
		return nil, err
	}
	return c.Client(), nil
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
