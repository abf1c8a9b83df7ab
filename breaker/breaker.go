// Package breaker is the fleet-wide circuit breaker: one breaker per
// provider endpoint, shared by every worker through Redis, so that a fleet of
// independent retry loops does not turn one outage into thousands of wasted
// calls and a dead-letter queue full of items that were never wrong.
//
// # Endpoint
//
// A breaker guards an endpoint: the API base URL plus the model family (the
// model name without a date or version suffix, so gpt-4o-2024-08-06 and
// gpt-4o share one). Providers fail per deployment, and a deployment serves
// one family.
//
// # States
//
// The state machine is gobreaker's (closed → open → half-open → closed or
// open), and its State type names the states. gobreaker's own
// DistributedCircuitBreaker is not used: its Execute holds a fleet-wide lock
// for the whole wrapped call, serialising the fleet, and it loses counts
// under concurrency. Here no lock is held across a call: Allow and Report are
// each one Lua script, so every count is updated atomically and a call runs
// between them with nothing held.
//
//   - Closed: every call is allowed. Outcomes are recorded per distinct item
//     over a sliding window. The breaker opens when ConsecutiveItems
//     different items fail in a row, when the failed share of at least
//     MinItems items reaches FailureRatio, or when RateLimitedItems items
//     got 429s and they are at least RateLimitedRatio of the items seen (the
//     sustained-429 rule: the provider wants the whole pipeline to pause).
//     Only classes that say the provider is in trouble feed it (quota,
//     overloaded, server_error, connection, auth); a bad item (bad_request,
//     not_found, ...) never does, and neither does a worker shutting down.
//   - Open: no call starts, except those that had already passed their check.
//     Tasks that meet it are delayed until it may half-open, plus jitter,
//     without spending an attempt. It half-opens after Cooldown.
//   - Half-open: at most MaxProbes probe calls fleet-wide, each holding a
//     lease (a probe whose worker died frees its slot when the lease ends).
//     A successful probe closes the breaker for everyone; a failed one opens
//     it again.
//
// Transitions are made by exactly one script run, so the worker that made
// one logs it: once per transition fleet-wide. They are also kept, with
// their times, in a log that status shows, so a transition is visible even
// if it happened between two looks.
package breaker

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"

	"github.com/llmfleet/llmfleet/checkpoint"
)

// Settings are a breaker's trip rules and timings. Zero values mean the
// documented defaults.
type Settings struct {
	// Cooldown is how long the breaker stays open before probes. Default 5m.
	Cooldown time.Duration
	// Window is the sliding window of outcomes. Default 1m.
	Window time.Duration
	// ConsecutiveItems different items failing in a row open it. Default 5.
	ConsecutiveItems int
	// MinItems is how many distinct items the window needs before the
	// failure ratio applies. Default 10.
	MinItems int
	// FailureRatio of failed items in the window opens it. Default 0.5.
	FailureRatio float64
	// RateLimitedItems distinct items with 429s in the window, if they are at
	// least RateLimitedRatio of the items seen, open it. Defaults 20 and 0.5.
	RateLimitedItems int
	RateLimitedRatio float64
	// MaxProbes is how many calls may run at once while half-open. Default 1.
	MaxProbes int
}

func (s *Settings) setDefaults() {
	if s.Cooldown <= 0 {
		s.Cooldown = 5 * time.Minute
	}
	if s.Window <= 0 {
		s.Window = time.Minute
	}
	if s.ConsecutiveItems <= 0 {
		s.ConsecutiveItems = 5
	}
	if s.MinItems <= 0 {
		s.MinItems = 10
	}
	if s.FailureRatio <= 0 {
		s.FailureRatio = 0.5
	}
	if s.RateLimitedItems <= 0 {
		s.RateLimitedItems = 20
	}
	if s.RateLimitedRatio <= 0 {
		s.RateLimitedRatio = 0.5
	}
	if s.MaxProbes <= 0 {
		s.MaxProbes = 1
	}
}

// Validate reports the first invalid setting, named as its worker flag.
func (s Settings) Validate() error {
	switch {
	case s.Cooldown < 0:
		return fmt.Errorf("--breaker-cooldown must not be negative, got %s", s.Cooldown)
	case s.FailureRatio < 0 || s.FailureRatio > 1:
		return fmt.Errorf("--breaker-failure-ratio must be between 0 and 1, got %g", s.FailureRatio)
	case s.RateLimitedRatio < 0 || s.RateLimitedRatio > 1:
		return fmt.Errorf("--breaker-429-ratio must be between 0 and 1, got %g", s.RateLimitedRatio)
	case s.ConsecutiveItems < 0, s.MinItems < 0, s.RateLimitedItems < 0, s.MaxProbes < 0:
		return fmt.Errorf("breaker item counts and --breaker-probes must not be negative")
	}
	return nil
}

var versionSuffix = regexp.MustCompile(`(-\d{4}-\d{2}-\d{2}|-\d{8}|-\d{4}|-latest|-preview)+$`)

// Family returns a model's family: its name without a date or version
// suffix.
func Family(model string) string {
	return versionSuffix.ReplaceAllString(strings.ToLower(model), "")
}

// Endpoint returns the id of the breaker guarding calls to model at
// baseURL: a short hash, since it is a Redis hash tag.
func Endpoint(baseURL, model string) string {
	sum := sha256.Sum256([]byte(strings.TrimRight(baseURL, "/") + "\x00" + Family(model)))
	return hex.EncodeToString(sum[:8])
}

// Transition is one change of state.
type Transition struct {
	From   string    `json:"from"`
	To     string    `json:"to"`
	At     time.Time `json:"at"`
	Reason string    `json:"reason"`
}

// Breaker is one endpoint's breaker.
type Breaker struct {
	rdb      redis.UniversalClient
	endpoint string
	keys     []string
	s        Settings
	now      func() time.Time
}

// New returns the breaker of an endpoint.
func New(rdb redis.UniversalClient, endpoint string, s Settings) *Breaker {
	s.setDefaults()
	return &Breaker{rdb: rdb, endpoint: endpoint, keys: checkpoint.BreakerKeys(endpoint), s: s, now: time.Now}
}

// WithClock returns a copy reading time from now (tests).
func (b *Breaker) WithClock(now func() time.Time) *Breaker {
	c := *b
	c.now = now
	return &c
}

// Endpoint returns the breaker's endpoint id.
func (b *Breaker) Endpoint() string { return b.endpoint }

// Decision is what Allow decided.
type Decision struct {
	// Allowed says the call may start.
	Allowed bool
	// Probe marks a half-open probe call; its token frees its slot.
	Probe bool
	token string
	// Wait is how long to wait before asking again when not allowed.
	Wait time.Duration
	// Transition is set when this call made the breaker half-open.
	Transition *Transition
}

// Allow decides whether a call may start now. probeLease bounds how long a
// probe slot is held if its worker dies before reporting.
func (b *Breaker) Allow(ctx context.Context, probeLease time.Duration) (Decision, error) {
	token := ""
	var tb [8]byte
	_, _ = rand.Read(tb[:])
	token = hex.EncodeToString(tb[:])
	halfOpenWait := min(b.s.Cooldown/10, 5*time.Second)
	if halfOpenWait < time.Second {
		halfOpenWait = time.Second
	}
	res, err := allowScript.Run(ctx, b.rdb, b.keys, b.now().UnixMilli(), b.s.MaxProbes, token,
		probeLease.Milliseconds(), halfOpenWait.Milliseconds()).Slice()
	if err != nil {
		return Decision{}, fmt.Errorf("breaker %s: allow: %w", b.endpoint, err)
	}
	d := Decision{}
	switch res[0].(string) {
	case "allow":
		d.Allowed = true
	case "probe":
		d.Allowed, d.Probe, d.token = true, true, token
	default:
		d.Wait = time.Duration(toInt64(res[1])) * time.Millisecond
	}
	if tr, _ := res[2].(string); tr != "" {
		d.Transition = decodeTransition(tr)
	}
	return d, nil
}

// Outcome is what a call's result tells the breaker.
type Outcome string

// Outcomes.
const (
	// Success: the provider answered well.
	Success Outcome = "ok"
	// Failure: a class that says the provider is in trouble.
	Failure Outcome = "fail"
	// RateLimited: a 429 (rate), counted by the sustained-429 rule.
	RateLimited Outcome = "rl"
	// Neutral: the provider answered, but the item was at fault.
	Neutral Outcome = "neutral"
	// Inconclusive: no sign of health (a timeout, a garbled answer). It does
	// not count while closed, and a probe ending so reopens the breaker.
	Inconclusive Outcome = "inconclusive"
	// Abandoned: no verdict (the worker is stopping); only frees a probe slot.
	Abandoned Outcome = "abandon"
)

// Report records a call's outcome for item (any string unique to the item,
// e.g. job and id) and returns the transition it caused, if any.
func (b *Breaker) Report(ctx context.Context, d Decision, o Outcome, item string) (*Transition, error) {
	s := b.s
	res, err := reportScript.Run(ctx, b.rdb, b.keys, b.now().UnixMilli(), string(o), item, d.token,
		s.Window.Milliseconds(), s.MinItems, strconv.FormatFloat(s.FailureRatio, 'f', -1, 64), s.ConsecutiveItems,
		s.RateLimitedItems, strconv.FormatFloat(s.RateLimitedRatio, 'f', -1, 64), s.Cooldown.Milliseconds()).Text()
	if err != nil {
		return nil, fmt.Errorf("breaker %s: report: %w", b.endpoint, err)
	}
	if res == "" {
		return nil, nil
	}
	return decodeTransition(res), nil
}

// Snapshot is a breaker's state as users see it.
type Snapshot struct {
	State       gobreaker.State
	Until       time.Time // when an open breaker may half-open
	Transitions []Transition
}

// StateName is the state as status shows it: closed, open or half-open.
func (s Snapshot) StateName() string { return s.State.String() }

// Read returns an endpoint's breaker state and its most recent transitions
// (newest first, at most 100).
func Read(ctx context.Context, rdb redis.UniversalClient, endpoint string) (Snapshot, error) {
	k := checkpoint.BreakerKeys(endpoint)
	var st *redis.SliceCmd
	var tr *redis.StringSliceCmd
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		st = p.HMGet(ctx, k[0], "state", "until")
		tr = p.LRange(ctx, k[6], 0, 99)
		return nil
	})
	if err != nil {
		return Snapshot{}, fmt.Errorf("breaker %s: read: %w", endpoint, err)
	}
	snap := Snapshot{State: parseState(str(st.Val()[0]))}
	if u, _ := strconv.ParseInt(str(st.Val()[1]), 10, 64); u > 0 && snap.State == gobreaker.StateOpen {
		snap.Until = time.UnixMilli(u).UTC()
	}
	for _, t := range tr.Val() {
		if x := decodeTransition(t); x != nil {
			snap.Transitions = append(snap.Transitions, *x)
		}
	}
	return snap, nil
}

func parseState(s string) gobreaker.State {
	switch s {
	case "open":
		return gobreaker.StateOpen
	case "half-open":
		return gobreaker.StateHalfOpen
	}
	return gobreaker.StateClosed
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func toInt64(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case string:
		n, _ := strconv.ParseInt(x, 10, 64)
		return n
	}
	return 0
}

func decodeTransition(s string) *Transition {
	var raw struct {
		From, To, Reason string
		At               int64
	}
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		return nil
	}
	return &Transition{From: raw.From, To: raw.To, Reason: raw.Reason, At: time.UnixMilli(raw.At).UTC()}
}
