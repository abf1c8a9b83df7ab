// Package ratelimit keeps the whole fleet within a provider's requests per
// minute and tokens per minute, in Redis, per provider key.
//
// It uses github.com/go-redis/redis_rate (GCRA, one Lua script per check, the
// Redis server's clock) rather than a hand-written bucket, and handles its
// edges (DESIGN.md):
//
//   - Burst. redis_rate's PerMinute sets the burst equal to the rate, which
//     would let a whole minute's quota out in the first second. Here the burst
//     is small (1 request; a tenth of the TPM) and the steady rate is lowered
//     by the burst, so that over any 60 s window at most the limit is
//     admitted: the provider's own sliding window never sees more.
//   - Cost above the burst. AllowN with n over the burst never succeeds, so a
//     reservation is clamped to the burst (a very large item is charged at
//     most a tenth of the TPM up front; its real usage is charged after the
//     call).
//   - Estimates. Tokens are reserved before the call (prompt estimate plus
//     max_tokens, or a default completion allowance) and corrected with the
//     response's usage. redis_rate cannot settle (a refund that empties a
//     cell is never written, a charge above what is left is refused), so a
//     small script of ours moves the same GCRA cell by exactly the
//     difference.
//   - Holds. A 429 with Retry-After holds the whole fleet back for that key
//     until then, not only the worker that got it. With no RPM/TPM limit
//     set, a worker reads the hold at most every HoldRefresh (its own it
//     sees at once), so a call costs no round trip at all; with limits, the
//     hold is read with every reservation, which makes round trips anyway.
//
// Keys are per provider key, derived from the base URL and a hash of the API
// key: the key itself never reaches Redis.
package ratelimit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"github.com/llmfleet/llmfleet/checkpoint"
)

// Limits are a provider's limits, the same for the whole fleet. Zero means
// unlimited.
type Limits struct {
	RPM int
	TPM int
}

// ProviderKey identifies a provider account: base URL and API key, hashed.
func ProviderKey(baseURL, apiKey string) string {
	sum := sha256.Sum256([]byte(strings.TrimRight(baseURL, "/") + "\x00" + apiKey))
	return hex.EncodeToString(sum[:8])
}

// Limiter is one provider key's limiter.
type Limiter struct {
	rdb            redis.UniversalClient
	rl             *redis_rate.Limiter
	lim            Limits
	rpmKey, tpmKey string
	holdKey        string
	rpm, tpm       redis_rate.Limit
	tpmBurst       int

	mu       sync.Mutex
	holdTill time.Time // the fleet-wide hold as last read (local clock)
	holdRead time.Time // when it was read
}

// HoldRefresh is how stale a worker's view of the fleet-wide hold may be.
const HoldRefresh = 100 * time.Millisecond

// New returns the limiter of a provider key.
func New(rdb redis.UniversalClient, providerKey string, lim Limits) *Limiter {
	l := &Limiter{rdb: rdb, rl: redis_rate.NewLimiter(rdb), lim: lim}
	l.rpmKey, l.tpmKey, l.holdKey = checkpoint.LimiterKeys(providerKey)
	if lim.RPM > 0 {
		// Burst 1, steady rate RPM-1: at most RPM in any 60 s window.
		l.rpm = redis_rate.Limit{Rate: max(lim.RPM-1, 1), Burst: 1, Period: time.Minute}
	}
	if lim.TPM > 0 {
		l.tpmBurst = max(lim.TPM/10, 1)
		l.tpm = redis_rate.Limit{Rate: max(lim.TPM-l.tpmBurst, 1), Burst: l.tpmBurst, Period: time.Minute}
	}
	return l
}

// Limited reports whether an RPM or TPM limit is set: without one, Reserve
// only honours the fleet-wide hold and Settle and Cancel do nothing.
func (l *Limiter) Limited() bool { return l.lim.RPM > 0 || l.lim.TPM > 0 }

// CountsTokens reports whether a TPM limit is set, so reservations need a
// token estimate.
func (l *Limiter) CountsTokens() bool { return l.lim.TPM > 0 }

// Reservation is what a successful Reserve took.
type Reservation struct {
	Tokens int
}

// Reserve takes one request and tokens (an estimate) from the limits. When
// the call may not start now it returns the wait before asking again and
// takes nothing.
func (l *Limiter) Reserve(ctx context.Context, tokens int) (Reservation, time.Duration, error) {
	if wait, err := l.held(ctx); err != nil || wait > 0 {
		return Reservation{}, wait, err
	}
	if l.lim.RPM > 0 {
		res, err := l.rl.AllowN(ctx, l.rpmKey, l.rpm, 1)
		if err != nil {
			return Reservation{}, 0, fmt.Errorf("rate limiter: %w", err)
		}
		if res.Allowed == 0 {
			return Reservation{}, res.RetryAfter, nil
		}
	}
	r := Reservation{}
	if l.lim.TPM > 0 {
		n := min(max(tokens, 1), l.tpmBurst)
		res, err := l.rl.AllowN(ctx, l.tpmKey, l.tpm, n)
		if err != nil {
			return Reservation{}, 0, fmt.Errorf("rate limiter: %w", err)
		}
		if res.Allowed == 0 {
			if l.lim.RPM > 0 {
				// Give the request back: the call does not happen now.
				if err := l.adjust(ctx, l.rpmKey, l.rpm, -1); err != nil {
					return Reservation{}, 0, fmt.Errorf("rate limiter: %w", err)
				}
			}
			return Reservation{}, res.RetryAfter, nil
		}
		r.Tokens = n
	}
	return r, 0, nil
}

// Settle corrects a reservation with the tokens the call really used
// (prompt + completion from usage); used is 0 when the call failed without
// usage, which returns the whole reservation.
func (l *Limiter) Settle(ctx context.Context, r Reservation, used int) error {
	if l.lim.TPM <= 0 {
		return nil
	}
	if diff := used - r.Tokens; diff != 0 {
		if err := l.adjust(ctx, l.tpmKey, l.tpm, diff); err != nil {
			return fmt.Errorf("rate limiter: settle: %w", err)
		}
	}
	return nil
}

// adjust moves a redis_rate cell by n units without asking: a negative n
// gives units back, a positive one charges them even past the burst (a
// call's real usage is owed whatever it is). redis_rate's own AllowN cannot
// do either: a refund that empties the cell is never written, and a charge
// above what is left is refused.
func (l *Limiter) adjust(ctx context.Context, key string, lim redis_rate.Limit, n int) error {
	return adjustScript.Run(ctx, l.rdb, []string{redisRatePrefix + key}, lim.Rate, lim.Period.Seconds(), n).Err()
}

// redisRatePrefix is what redis_rate puts before the keys it is given.
const redisRatePrefix = "rate:"

// adjustScript: KEYS cell; ARGV rate, period_s, n. Same cell format and
// clock as redis_rate's GCRA (a theoretical arrival time in seconds since
// 2017-01-01, server time).
var adjustScript = redis.NewScript(`
local jan_1_2017 = 1483228800
local t = redis.call('TIME')
local now = (t[1] - jan_1_2017) + (t[2] / 1000000)
local interval = tonumber(ARGV[2]) / tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
tat = math.max(tat, now) + interval * tonumber(ARGV[3])
if tat <= now then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], tat, 'EX', math.ceil(tat - now))
end
return 1
`)

// Hold holds every worker's calls for this key back for d (a 429's
// Retry-After). A longer hold already in place is kept.
func (l *Limiter) Hold(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	if err := holdScript.Run(ctx, l.rdb, []string{l.holdKey}, d.Milliseconds()).Err(); err != nil {
		return fmt.Errorf("rate limiter: hold: %w", err)
	}
	// This worker holds back at once; the others within HoldRefresh.
	l.mu.Lock()
	l.extendHold(time.Now().Add(d))
	l.mu.Unlock()
	return nil
}

// held returns how long a hold still lasts, read from Redis at most every
// HoldRefresh when no limit is set.
func (l *Limiter) held(ctx context.Context) (time.Duration, error) {
	now := time.Now()
	l.mu.Lock()
	till, fresh := l.holdTill, !l.Limited() && now.Sub(l.holdRead) < HoldRefresh
	l.mu.Unlock()
	if fresh {
		return max(till.Sub(now), 0), nil
	}
	ms, err := heldScript.Run(ctx, l.rdb, []string{l.holdKey}).Int64()
	if err != nil {
		return 0, fmt.Errorf("rate limiter: %w", err)
	}
	d := time.Duration(ms) * time.Millisecond
	l.heldFor(now, d)
	return d, nil
}

// heldFor notes a hold of d from at; a longer one already noted is kept.
func (l *Limiter) heldFor(at time.Time, d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.holdRead = at
	// Never shorter than a hold this worker set itself since: the read may
	// have been answered before that hold landed.
	l.extendHold(at.Add(d))
}

// extendHold moves the local hold to till unless it already lasts longer.
// l.mu is held.
func (l *Limiter) extendHold(till time.Time) {
	if till.After(l.holdTill) {
		l.holdTill = till
	}
}

// Holds are kept in the Redis server's time, like redis_rate's cells, so
// workers' clock skew does not matter.
const luaNow = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

// holdScript: KEYS hold; ARGV duration_ms. Keeps the later hold.
var holdScript = redis.NewScript(luaNow + `
local untl = now + tonumber(ARGV[1])
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if untl > cur then
  redis.call('SET', KEYS[1], untl, 'PX', tonumber(ARGV[1]) + 1000)
end
return 1
`)

// heldScript: KEYS hold. Returns the milliseconds the hold still lasts.
var heldScript = redis.NewScript(luaNow + `
local untl = tonumber(redis.call('GET', KEYS[1]) or '0')
if untl > now then return untl - now end
return 0
`)

// Cancel gives back a reservation whose call does not happen.
func (l *Limiter) Cancel(ctx context.Context, r Reservation) error {
	if l.lim.RPM > 0 {
		if err := l.adjust(ctx, l.rpmKey, l.rpm, -1); err != nil {
			return fmt.Errorf("rate limiter: cancel: %w", err)
		}
	}
	if l.lim.TPM > 0 && r.Tokens > 0 {
		if err := l.adjust(ctx, l.tpmKey, l.tpm, -r.Tokens); err != nil {
			return fmt.Errorf("rate limiter: cancel: %w", err)
		}
	}
	return nil
}
