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
//   - Closed: every call is allowed. Outcomes are recorded over a sliding
//     window: failures and 429s per distinct item, successes counted. The breaker opens when ConsecutiveItems
//     different items fail in a row, when the failed share of at least
//     MinItems items reaches FailureRatio, or when RateLimitedItems items
//     got 429s and they are at least RateLimitedRatio of the items seen (the
//     sustained-429 rule: the provider wants the whole pipeline to pause).
//     Only classes that say the provider is in trouble feed it (quota,
//     overloaded, server_error, connection, auth); a bad item (bad_request,
//     not_found, ...) never does, and neither does a worker shutting down.
//   - Open: no call starts, except those that had already passed their check.
//     Tasks that meet it are delayed until it may half-open, plus jitter,
//     without spending an attempt. It half-opens after FirstCooldown (15 s)
//     the first time; every failed probe doubles that, up to Cooldown (5m).
//   - Half-open: at most MaxProbes probe calls fleet-wide, each holding a
//     lease (a probe whose worker died frees its slot when the lease ends).
//     A successful probe closes the breaker for everyone; a failed one opens
//     it again.
//
// # A worker's view
//
// A call must not pay a round trip for a breaker that is closed: each
// worker keeps a view of the shared state, refreshed by every script it runs
// and at most Settings.Refresh old (250 ms) while closed. An open breaker is
// answered from the view until its cooldown ends. Outcomes other than
// success are sent at once; successes, which cannot meet a trip rule once
// the window holds MinItems items, are counted per second in the worker and
// sent in one batch at most every Refresh, or first thing with the worker's
// next other outcome, so one worker's outcomes keep their order. The window
// counts successes per second rather than listing them, so a healthy
// endpoint costs a few commands per worker per Refresh, not several per
// call. A worker that has not yet heard of an open breaker may start calls
// for up to Refresh; each one's failure refreshes its view.
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
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"

	"github.com/llmfleet/llmfleet/checkpoint"
)

// Settings are a breaker's trip rules and timings. Zero values mean the
// documented defaults.
type Settings struct {
	// Cooldown is the longest the breaker stays open before probes.
	// Default 5m.
	Cooldown time.Duration
	// FirstCooldown is how long it stays open the first time; each failed
	// probe doubles it, up to Cooldown, and a close starts over. An outage
	// that ends quickly, or a false alarm, then costs seconds, while a
	// provider that stays down is probed ever more rarely. Default 15s, at
	// most Cooldown.
	FirstCooldown time.Duration
	// Window is the sliding window of outcomes. Default 1m.
	Window time.Duration
	// ConsecutiveItems different items failing in a row open it. Default
	// 10: an outage fails every item it meets, so the streak grows with the
	// items in flight, while a cluster of bad items (at the end of a file,
	// say) only ever adds up to the number of bad items, however often they
	// are retried.
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
	// Refresh is how stale a worker's view of the shared state may be: a
	// closed breaker lets calls through without asking Redis for this long
	// after the worker last heard from it, and successes are sent in one
	// batch at most this often. Every other outcome is sent at once and
	// refreshes the view. Default 250ms.
	Refresh time.Duration
}

func (s *Settings) setDefaults() {
	if s.Cooldown <= 0 {
		s.Cooldown = 5 * time.Minute
	}
	if s.Window <= 0 {
		s.Window = time.Minute
	}
	if s.FirstCooldown <= 0 {
		s.FirstCooldown = 15 * time.Second
	}
	s.FirstCooldown = min(s.FirstCooldown, s.Cooldown)
	if s.ConsecutiveItems <= 0 {
		s.ConsecutiveItems = 10
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
	if s.Refresh <= 0 {
		s.Refresh = 250 * time.Millisecond
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
	case s.FirstCooldown < 0:
		return fmt.Errorf("--breaker-first-cooldown must not be negative, got %s", s.FirstCooldown)
	case s.Refresh < 0:
		return fmt.Errorf("breaker refresh must not be negative, got %s", s.Refresh)
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

// Breaker is one endpoint's breaker, as one worker sees it. It is safe for
// concurrent use; each worker process keeps one per endpoint.
type Breaker struct {
	rdb      redis.UniversalClient
	endpoint string
	keys     []string
	s        Settings
	now      func() time.Time

	mu    *sync.Mutex
	view  *view
	batch *batch
}

// view is what this worker last heard of the shared state.
type view struct {
	known bool
	state gobreaker.State
	until time.Time // when an open breaker may half-open
	at    time.Time // when it was heard
	// failed and succeeded are the window's counts while closed.
	failed, succeeded int64
}

// batch is the successes counted since the last report: per second (the
// window's granularity) and the items, so that those that had failed or
// been rate-limited leave those windows.
type batch struct {
	perSecond map[int64]int
	items     []string
	since     time.Time // the first success in the batch
	last      time.Time // the last one: the streak it breaks ends there
}

// New returns the breaker of an endpoint.
func New(rdb redis.UniversalClient, endpoint string, s Settings) *Breaker {
	s.setDefaults()
	return &Breaker{rdb: rdb, endpoint: endpoint, keys: checkpoint.BreakerKeys(endpoint), s: s, now: time.Now,
		mu: &sync.Mutex{}, view: &view{}, batch: &batch{}}
}

// WithClock returns a copy reading time from now (tests). It shares the
// original's view and batch.
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

// ViewState is this worker's view of the state: "closed", "open",
// "half-open", or "" before it heard anything (the worker's metrics).
func (b *Breaker) ViewState() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.view.known {
		return ""
	}
	return b.view.state.String()
}

// Allow decides whether a call may start now. probeLease bounds how long a
// probe slot is held if its worker dies before reporting. A closed breaker
// heard from within Settings.Refresh, and an open one whose cooldown has
// not ended, are answered from the worker's view without a round trip.
func (b *Breaker) Allow(ctx context.Context, probeLease time.Duration) (Decision, error) {
	now := b.now()
	b.mu.Lock()
	v := *b.view
	b.mu.Unlock()
	switch {
	case v.known && v.state == gobreaker.StateClosed && now.Sub(v.at) < b.s.Refresh:
		return Decision{Allowed: true}, nil
	case v.known && v.state == gobreaker.StateOpen && now.Before(v.until):
		return Decision{Wait: v.until.Sub(now)}, nil
	}
	var tb [8]byte
	_, _ = rand.Read(tb[:])
	token := hex.EncodeToString(tb[:])
	halfOpenWait := min(b.s.Cooldown/10, 5*time.Second)
	if halfOpenWait < time.Second {
		halfOpenWait = time.Second
	}
	res, err := allowScript.Run(ctx, b.rdb, b.keys, now.UnixMilli(), b.s.MaxProbes, token,
		probeLease.Milliseconds(), halfOpenWait.Milliseconds()).Slice()
	if err != nil {
		return Decision{}, fmt.Errorf("breaker %s: allow: %w", b.endpoint, err)
	}
	b.heard(now, res[3], res[4], nil, nil)
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

// restore puts back a batch whose sending failed.
func (b *Breaker) restore(bt batch) {
	if bt.perSecond == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	cur := b.batch
	if cur.perSecond == nil {
		*cur = bt
		return
	}
	for sec, n := range bt.perSecond {
		cur.perSecond[sec] += n
	}
	cur.items = append(bt.items, cur.items...)
	if bt.since.Before(cur.since) {
		cur.since = bt.since
	}
	if bt.last.After(cur.last) {
		cur.last = bt.last
	}
}

// heard updates the view from a script's answer.
func (b *Breaker) heard(at time.Time, state, until, failed, succeeded any) {
	v := view{known: true, state: parseState(str(state)), at: at, failed: toInt64(failed), succeeded: toInt64(succeeded)}
	if u := toInt64(until); u > 0 && v.state == gobreaker.StateOpen {
		v.until = time.UnixMilli(u)
	}
	b.mu.Lock()
	if !b.view.at.After(at) {
		if failed == nil {
			// Allow does not count the window: keep the last counts.
			v.failed, v.succeeded = b.view.failed, b.view.succeeded
		}
		if v.state != gobreaker.StateClosed {
			// Successes of calls allowed before it opened do not count.
			*b.batch = batch{}
		}
		*b.view = v
	}
	b.mu.Unlock()
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

// outcomeBatch sends the batched successes alone.
const outcomeBatch Outcome = "batch"

// Report records a call's outcome for item (any string unique to the item,
// e.g. job and id) and returns the transition it caused, if any. The
// successes of calls that were not probes are batched (see
// Settings.Refresh); any other report sends the batch first, so the order of
// one worker's outcomes is kept.
func (b *Breaker) Report(ctx context.Context, d Decision, o Outcome, item string) (*Transition, error) {
	now := b.now()
	switch {
	case o == Abandoned && !d.Probe:
		return nil, nil
	case o == Success && !d.Probe:
		switch b.batchable() {
		case batchDrop:
			return nil, nil
		case batchKeep:
			b.mu.Lock()
			bt := b.batch
			if bt.perSecond == nil {
				bt.perSecond, bt.since = map[int64]int{}, now
			}
			bt.perSecond[now.UnixMilli()/1000]++
			bt.items = append(bt.items, item)
			bt.last = now
			due := now.Sub(bt.since) >= b.s.Refresh
			b.mu.Unlock()
			if !due {
				return nil, nil
			}
			o, item = outcomeBatch, ""
		}
	}
	return b.send(ctx, now, d, o, item)
}

// FlushDue sends the batched successes if the oldest has waited Refresh: a
// worker calls it periodically, so that a worker gone idle does not keep
// its successes from the window.
func (b *Breaker) FlushDue(ctx context.Context) error {
	b.mu.Lock()
	due := b.batch.perSecond != nil && b.now().Sub(b.batch.since) >= b.s.Refresh
	b.mu.Unlock()
	if !due {
		return nil
	}
	return b.Flush(ctx)
}

// What becomes of a success that is not a probe's.
const (
	batchSend = iota // send it now: it could meet a trip rule
	batchKeep        // keep it in the batch
	batchDrop        // drop it: the breaker is not closed, so it would not count
)

// batchable says what becomes of a success. One can only meet a trip rule
// while the window holds failures among fewer than MinItems items (it makes
// the count reach MinItems): that one is sent at once. Any other lowers
// every ratio and breaks the streak, which the batch does when it is sent,
// before any later outcome of this worker. A breaker that is not closed
// ignores the successes of calls allowed before it opened.
func (b *Breaker) batchable() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	v := b.view
	switch {
	case !v.known:
		return batchSend
	case v.state != gobreaker.StateClosed:
		return batchDrop
	case v.failed == 0 || v.failed+v.succeeded+int64(len(b.batch.items)) >= int64(b.s.MinItems):
		return batchKeep
	}
	return batchSend
}

// Flush sends the batched successes now (a worker shutting down).
func (b *Breaker) Flush(ctx context.Context) error {
	b.mu.Lock()
	empty := b.batch.perSecond == nil
	b.mu.Unlock()
	if empty {
		return nil
	}
	_, err := b.send(ctx, b.now(), Decision{}, outcomeBatch, "")
	return err
}

func (b *Breaker) send(ctx context.Context, now time.Time, d Decision, o Outcome, item string) (*Transition, error) {
	b.mu.Lock()
	bt := *b.batch
	*b.batch = batch{}
	b.mu.Unlock()
	lastOK := int64(0)
	if !bt.last.IsZero() {
		lastOK = bt.last.UnixMilli()
	}
	var enc strings.Builder
	for sec, n := range bt.perSecond {
		if enc.Len() > 0 {
			enc.WriteByte(',')
		}
		enc.WriteString(strconv.FormatInt(sec, 10) + ":" + strconv.Itoa(n))
	}
	s := b.s
	args := make([]any, 0, 12+len(bt.items))
	args = append(args, now.UnixMilli(), string(o), item, d.token,
		s.Window.Milliseconds(), s.MinItems, strconv.FormatFloat(s.FailureRatio, 'f', -1, 64), s.ConsecutiveItems,
		s.RateLimitedItems, strconv.FormatFloat(s.RateLimitedRatio, 'f', -1, 64), s.Cooldown.Milliseconds(), enc.String(), lastOK,
		s.FirstCooldown.Milliseconds())
	for _, it := range bt.items {
		args = append(args, it)
	}
	res, err := reportScript.Run(ctx, b.rdb, b.keys, args...).Slice()
	if err != nil {
		b.restore(bt)
		return nil, fmt.Errorf("breaker %s: report: %w", b.endpoint, err)
	}
	b.heard(now, res[1], res[2], res[3], res[4])
	if tr, _ := res[0].(string); tr != "" {
		return decodeTransition(tr), nil
	}
	return nil, nil
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
