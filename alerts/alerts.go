package alerts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llmfleet/llmfleet/agent"
	"github.com/llmfleet/llmfleet/breaker"
	"github.com/llmfleet/llmfleet/checkpoint"
)

// Config configures a worker's alerts. Zero values mean the documented
// defaults; with no Webhooks alerts are off.
type Config struct {
	// Webhooks receive every event (--alert-webhook). They are kept in
	// memory only: logs call them "webhook #1", Redis never sees them.
	Webhooks []string
	// Format is json (default) or slack.
	Format Format
	// Secret, when set, signs every body (SignatureHeader).
	Secret string
	// ErrorRate: error_rate fires when more than this share of a job's
	// items finished in the window failed. Default 0.05.
	ErrorRate float64
	// MinItems is how many items of the job must have finished in the
	// window before ErrorRate applies. Default 20.
	MinItems int
	// Window is the error-rate rule's sliding window. Default 5m.
	Window time.Duration
	// Cooldown is the least time between two error_rate events of a job.
	// Default 15m.
	Cooldown time.Duration
	// Logger receives the alerts' logs. Default: discard.
	Logger *slog.Logger

	// Interval is how often counts are flushed, rules evaluated and the
	// outbox read. Default 1s.
	Interval time.Duration
	// RetryMin and RetryMax bound the jittered exponential backoff of a
	// failing delivery. Defaults 1s and 5m.
	RetryMin, RetryMax time.Duration
	// ClaimIdle is how long a delivery may sit unacknowledged with a
	// worker that stopped heartbeating before another claims it. Default 1m.
	ClaimIdle time.Duration
	// MaxEvents bounds the outbox stream. Default 10000.
	MaxEvents int64
	// MaxAge is how long an event is retried before it is dropped.
	// Default 24h.
	MaxAge time.Duration
	// Client posts the webhooks. Default: a client with a 10s timeout.
	Client *http.Client
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Consumer names this worker in the outbox's consumer group. Default:
	// host, pid and a random suffix.
	Consumer string
}

// Enabled reports whether any webhook is configured.
func (c Config) Enabled() bool { return len(c.Webhooks) > 0 }

func (c *Config) setDefaults() {
	if c.Format == "" {
		c.Format = JSON
	}
	if c.ErrorRate == 0 {
		c.ErrorRate = 0.05
	}
	if c.MinItems == 0 {
		c.MinItems = 20
	}
	if c.Window == 0 {
		c.Window = 5 * time.Minute
	}
	if c.Cooldown == 0 {
		c.Cooldown = 15 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Interval == 0 {
		c.Interval = time.Second
	}
	if c.RetryMin == 0 {
		c.RetryMin = time.Second
	}
	if c.RetryMax == 0 {
		c.RetryMax = 5 * time.Minute
	}
	if c.ClaimIdle == 0 {
		c.ClaimIdle = time.Minute
	}
	if c.MaxEvents == 0 {
		c.MaxEvents = 10000
	}
	if c.MaxAge == 0 {
		c.MaxAge = 24 * time.Hour
	}
	if c.Client == nil {
		// Redirects are not followed: a 301 would turn the POST into a
		// bodyless GET counted as delivered, a 307 would carry the
		// signature to another host. A 3xx is a failed delivery.
		c.Client = &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Consumer == "" {
		host, _ := os.Hostname()
		c.Consumer = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), strconv.FormatInt(time.Now().UnixNano()%1e9, 36))
	}
}

// Validate reports the first invalid field, named as its flag. It never
// quotes a webhook: its URL is a secret.
func (c *Config) Validate() error {
	for i, w := range c.Webhooks {
		u, err := url.Parse(w)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("--alert-webhook #%d is not an http:// or https:// URL", i+1)
		}
	}
	switch {
	case c.Format != "" && c.Format != JSON && c.Format != Slack:
		return fmt.Errorf("--alert-format: %q is not json or slack", c.Format)
	case c.ErrorRate < 0 || c.ErrorRate >= 1:
		return fmt.Errorf("--alert-error-rate must be above 0 and below 1, got %g", c.ErrorRate)
	case c.MinItems < 0:
		return fmt.Errorf("--alert-min-items must be at least 1, got %d", c.MinItems)
	case c.Window < 0 || (c.Window > 0 && c.Window < time.Second):
		return fmt.Errorf("--alert-window must be at least 1s, got %s", c.Window)
	case c.Cooldown < 0:
		return fmt.Errorf("--alert-cooldown must not be negative, got %s", c.Cooldown)
	case c.RetryMin < 0 || c.RetryMax < 0 || (c.RetryMax > 0 && c.RetryMin > c.RetryMax):
		return fmt.Errorf("alerts: retry backoff %s..%s is not a range", c.RetryMin, c.RetryMax)
	case c.MaxEvents < 0:
		return fmt.Errorf("alerts: outbox bound must not be negative, got %d", c.MaxEvents)
	}
	return nil
}

// group is the outbox's consumer group, shared by every worker.
const group = "llmfleet-alerts"

// maxQueued bounds the events raised in memory but not yet in Redis (while
// Redis is unreachable); the oldest are dropped first.
const maxQueued = 1000

// raisedTTL is how long an event id is remembered fleet-wide, so a worker
// raising the same event later does not send it again.
const raisedTTL = 24 * time.Hour

// Alerter is one worker's part of the fleet's alerts: its hooks count and
// queue in memory, its loops share the counts, raise events once for the
// fleet and deliver them. A nil *Alerter does nothing.
type Alerter struct {
	cfg    Config
	rdb    redis.UniversalClient
	store  *checkpoint.Store
	keys   checkpoint.AlertKeySet
	log    *slog.Logger
	bucket time.Duration

	mu      sync.Mutex
	counts  map[string]map[int64]*count // job → bucket → not yet flushed
	active  map[string]time.Time        // job → when an item of it last finished here
	watch   map[string]bool             // jobs to check for finished or expired
	queue   []raise                     // raised here, not yet in Redis
	dropped int

	// The delivery loop's own state.
	inflight    map[string]*delivery // stream id → a delivery waiting for a retry
	claimCursor string
	grouped     bool

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type count struct{ n, f int64 }

// raise is an event and the key that lets it through once: the event id's
// marker, or a rule's cooldown.
type raise struct {
	ev   Event
	gate string
	ttl  time.Duration
}

// New returns the alerts of a worker on rdb, or nil when cfg has no webhook.
func New(rdb redis.UniversalClient, store *checkpoint.Store, cfg Config) (*Alerter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if !cfg.Enabled() {
		return nil, nil
	}
	cfg.setDefaults()
	b := (cfg.Window / 10).Truncate(time.Second)
	if b < time.Second {
		b = time.Second
	}
	return &Alerter{
		cfg: cfg, rdb: rdb, store: store, keys: checkpoint.AlertKeys(), log: cfg.Logger, bucket: b,
		counts: map[string]map[int64]*count{}, active: map[string]time.Time{}, watch: map[string]bool{},
		inflight: map[string]*delivery{}, claimCursor: "0-0",
	}, nil
}

// ItemFinished counts an item of job that ended done or failed.
func (a *Alerter) ItemFinished(job string, failed bool) {
	if a == nil {
		return
	}
	now := a.cfg.Now()
	b := now.UnixMilli() / a.bucket.Milliseconds()
	a.mu.Lock()
	defer a.mu.Unlock()
	m := a.counts[job]
	if m == nil {
		m = map[int64]*count{}
		a.counts[job] = m
	}
	c := m[b]
	if c == nil {
		c = &count{}
		m[b] = c
	}
	c.n++
	if failed {
		c.f++
	}
	a.active[job] = now
	a.watch[job] = true
}

// BreakerTransition raises breaker_open when the breaker opens from closed
// and breaker_closed when it closes; a failed probe reopening it is the
// same outage.
func (a *Alerter) BreakerTransition(job, endpoint string, tr breaker.Transition) {
	if a == nil {
		return
	}
	var k Kind
	switch {
	case tr.To == "open" && tr.From == "closed":
		k = BreakerOpen
	case tr.To == "closed":
		k = BreakerClosed
	default:
		return
	}
	at := tr.At
	if at.IsZero() {
		at = a.cfg.Now()
	}
	id := eventID(k, job, endpoint, strconv.FormatInt(at.UnixMilli(), 10))
	a.enqueue(Event{ID: id, Kind: k, Job: job, At: at, Details: map[string]any{
		"endpoint": endpoint, "from": tr.From, "to": tr.To, "reason": tr.Reason,
	}}, "")
}

// BudgetPaused raises budget_paused (the worker that paused the job calls
// it, once fleet-wide).
func (a *Alerter) BudgetPaused(job, reason string) {
	if a == nil {
		return
	}
	now := a.cfg.Now()
	id := eventID(BudgetPaused, job, strconv.FormatInt(now.UnixMilli(), 10))
	a.enqueue(Event{ID: id, Kind: BudgetPaused, Job: job, At: now, Details: map[string]any{"reason": reason}}, "")
}

// AwaitingInput raises awaiting_input for an item parked for a person. A
// worker parking it again with the same requests raises the same id, so
// the event is sent once per set of requests.
func (a *Alerter) AwaitingInput(job, item string, waiting []agent.Request) {
	if a == nil {
		return
	}
	ids := make([]string, 0, len(waiting))
	var tools []string
	for _, r := range waiting {
		ids = append(ids, r.ID)
		if r.Tool != "" && !slices.Contains(tools, r.Tool) {
			tools = append(tools, r.Tool)
		}
	}
	slices.Sort(ids)
	slices.Sort(tools)
	id := eventID(AwaitingInput, job, item, strings.Join(ids, ","))
	a.enqueue(Event{ID: id, Kind: AwaitingInput, Job: job, At: a.cfg.Now(), Details: map[string]any{
		"item": item, "requests": len(waiting), "request_ids": ids, "tools": tools,
	}}, "")
}

// enqueue queues ev to be raised; gate "" means the event id's marker.
func (a *Alerter) enqueue(ev Event, gate string) {
	r := raise{ev: ev, gate: gate, ttl: raisedTTL}
	if gate == "" {
		r.gate = a.keys.Raised + ev.ID
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.queue) >= maxQueued {
		a.queue = a.queue[1:]
		a.dropped++
	}
	a.queue = append(a.queue, r)
}

// Start starts the loops: one shares counts and raises events, one
// delivers them.
func (a *Alerter) Start() {
	if a == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	a.wg.Go(func() { a.loop(ctx, a.tick) })
	a.wg.Go(func() { a.loop(ctx, a.deliverTick) })
	a.log.Info("alerts on", "webhooks", len(a.cfg.Webhooks), "format", string(a.cfg.Format), "signed", a.cfg.Secret != "",
		"error_rate", a.cfg.ErrorRate, "min_items", a.cfg.MinItems, "window", a.cfg.Window.String(), "cooldown", a.cfg.Cooldown.String())
}

// Shutdown stops the loops and waits for them, then shares the last counts
// and raises what is queued, so nothing this worker saw is lost. Deliveries
// not yet acknowledged stay in the outbox for another worker.
func (a *Alerter) Shutdown() {
	if a == nil || a.cancel == nil {
		return
	}
	a.cancel()
	a.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	a.tick(ctx)
}

func (a *Alerter) loop(ctx context.Context, f func(context.Context)) {
	t := time.NewTicker(a.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f(ctx)
		}
	}
}

// tick flushes the counts, evaluates the rules and raises what is queued.
func (a *Alerter) tick(ctx context.Context) {
	now := a.cfg.Now()
	a.mu.Lock()
	counts := a.counts
	a.counts = map[string]map[int64]*count{}
	var recent []string
	for job, at := range a.active {
		if now.Sub(at) > a.cfg.Window {
			delete(a.active, job)
			continue
		}
		recent = append(recent, job)
	}
	watch := make([]string, 0, len(a.watch))
	for job := range a.watch {
		watch = append(watch, job)
	}
	if a.dropped > 0 {
		a.log.Warn("alerts: events dropped while Redis was unreachable", "dropped", a.dropped)
		a.dropped = 0
	}
	a.mu.Unlock()

	if err := a.flush(ctx, counts); err != nil {
		a.log.Warn("alerts: share item counts", "err", err)
		a.restore(counts)
	}
	for _, job := range recent {
		if err := a.checkRate(ctx, job, now); err != nil {
			a.log.Warn("alerts: error-rate rule", "job", job, "err", err)
		}
	}
	for _, job := range watch {
		if err := a.checkEnd(ctx, job); err != nil {
			a.log.Warn("alerts: check job", "job", job, "err", err)
		}
	}
	a.raiseQueued(ctx)
}

func (a *Alerter) flush(ctx context.Context, counts map[string]map[int64]*count) error {
	if len(counts) == 0 {
		return nil
	}
	ttl := a.cfg.Window + 2*a.bucket
	_, err := a.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for job, m := range counts {
			k := a.keys.Counts + job
			for b, c := range m {
				f := strconv.FormatInt(b, 10)
				p.HIncrBy(ctx, k, f+":n", c.n)
				if c.f > 0 {
					p.HIncrBy(ctx, k, f+":f", c.f)
				}
			}
			// Buckets that left the window go: the hash stays the
			// window's size however long the job runs.
			for b := range m {
				for old := b - 2*int64(a.cfg.Window/a.bucket) - 4; old < b-int64(a.cfg.Window/a.bucket)-1; old++ {
					f := strconv.FormatInt(old, 10)
					p.HDel(ctx, k, f+":n", f+":f")
				}
				break
			}
			p.PExpire(ctx, k, ttl)
		}
		return nil
	})
	return err
}

// restore puts back counts a failed flush did not share.
func (a *Alerter) restore(counts map[string]map[int64]*count) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for job, m := range counts {
		dst := a.counts[job]
		if dst == nil {
			a.counts[job] = m
			continue
		}
		for b, c := range m {
			if d := dst[b]; d != nil {
				d.n += c.n
				d.f += c.f
			} else {
				dst[b] = c
			}
		}
	}
}

// checkRate evaluates the error-rate rule on the fleet's counts of job.
func (a *Alerter) checkRate(ctx context.Context, job string, now time.Time) error {
	m, err := a.rdb.HGetAll(ctx, a.keys.Counts+job).Result()
	if err != nil {
		return err
	}
	first := now.Add(-a.cfg.Window).UnixMilli()/a.bucket.Milliseconds() + 1
	var n, f int64
	for field, v := range m {
		bs, kind, ok := strings.Cut(field, ":")
		b, err := strconv.ParseInt(bs, 10, 64)
		if !ok || err != nil || b < first {
			continue
		}
		x, _ := strconv.ParseInt(v, 10, 64)
		switch kind {
		case "n":
			n += x
		case "f":
			f += x
		}
	}
	if n < int64(a.cfg.MinItems) || n == 0 {
		return nil
	}
	rate := float64(f) / float64(n)
	if rate <= a.cfg.ErrorRate {
		return nil
	}
	// The cooldown key is the gate: the first worker to set it raises the
	// event, the others (and this one, until it expires) raise nothing.
	id := eventID(ErrorRate, job, strconv.FormatInt(now.UnixMilli(), 10))
	r := raise{
		ev: Event{ID: id, Kind: ErrorRate, Job: job, At: now, Details: map[string]any{
			"failed": f, "items": n, "rate": rate, "threshold": a.cfg.ErrorRate,
			"min_items": a.cfg.MinItems, "window": a.cfg.Window.String(),
		}},
		gate: a.keys.Cooldown + string(ErrorRate) + ":" + job, ttl: a.cfg.Cooldown,
	}
	_, err = a.raise(ctx, r)
	return err
}

// checkEnd raises job_finished or job_expired once the job has ended.
func (a *Alerter) checkEnd(ctx context.Context, job string) error {
	j, err := a.store.Job(ctx, job)
	if errors.Is(err, checkpoint.ErrJobNotFound) {
		a.unwatch(job)
		return nil
	}
	if err != nil {
		return err
	}
	var ev Event
	switch {
	case j.State == checkpoint.StateDone, j.State == checkpoint.StateCancelled && !j.FinishedAt.IsZero():
		ev = Event{ID: eventID(JobFinished, job, strconv.FormatInt(j.FinishedAt.UnixMilli(), 10)), Kind: JobFinished, At: j.FinishedAt}
	case j.State == checkpoint.StateExpired:
		ev = Event{ID: eventID(JobExpired, job, strconv.FormatInt(j.Policy.Deadline.UnixMilli(), 10)), Kind: JobExpired, At: j.Policy.Deadline}
	default:
		return nil
	}
	if ev.At.IsZero() {
		ev.At = a.cfg.Now()
	}
	ev.Job = job
	ev.Details = map[string]any{"summary": summarize(j)}
	if _, err := a.raise(ctx, raise{ev: ev, gate: a.keys.Raised + ev.ID, ttl: raisedTTL}); err != nil {
		return err
	}
	a.unwatch(job)
	return nil
}

func (a *Alerter) unwatch(job string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.watch, job)
}

func (a *Alerter) raiseQueued(ctx context.Context) {
	a.mu.Lock()
	q := a.queue
	a.queue = nil
	a.mu.Unlock()
	for i, r := range q {
		if _, err := a.raise(ctx, r); err != nil {
			a.log.Warn("alerts: raise event", "event", string(r.ev.Kind), "id", r.ev.ID, "err", err)
			a.mu.Lock()
			a.queue = append(q[i:len(q):len(q)], a.queue...)
			if over := len(a.queue) - maxQueued; over > 0 {
				a.queue = a.queue[over:]
				a.dropped += over
			}
			a.mu.Unlock()
			return
		}
	}
}

// raiseScript lets an event through its gate once and appends it to the
// bounded outbox, atomically: a gate set without the event queued would
// lose it.
var raiseScript = redis.NewScript(`
if redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then
  redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[2], '*', 'event', ARGV[3])
  return 1
end
return 0
`)

// raise queues the event in the outbox unless its gate is already set. It
// reports whether this call raised it.
func (a *Alerter) raise(ctx context.Context, r raise) (bool, error) {
	body, err := r.ev.MarshalJSON()
	if err != nil {
		return false, fmt.Errorf("encode event %s: %w", r.ev.ID, err)
	}
	ttl := max(r.ttl.Milliseconds(), 1)
	n, err := raiseScript.Run(ctx, a.rdb, []string{r.gate, a.keys.Outbox}, ttl, a.cfg.MaxEvents, body).Int()
	if err != nil {
		return false, err
	}
	if n == 1 {
		a.log.Info("alert raised", "event", string(r.ev.Kind), "id", r.ev.ID, "job", r.ev.Job)
	}
	return n == 1, nil
}
