package worker

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llmfleet/llmfleet/breaker"
	"github.com/llmfleet/llmfleet/provider"
	"github.com/llmfleet/llmfleet/ratelimit"
	"github.com/llmfleet/llmfleet/tasks"
	"github.com/llmfleet/llmfleet/tokens"
)

// guard is the fleet-wide protection in front of every call: the provider
// key's rate limiter and the endpoint's circuit breaker, both in Redis.
type guard struct {
	rdb      redis.UniversalClient
	baseURL  string
	settings breaker.Settings
	noBreak  bool
	limiter  *ratelimit.Limiter
	log      *slog.Logger
	metrics  *Metrics

	mu       sync.Mutex
	breakers map[string]*breaker.Breaker // by endpoint
	byModel  map[string]*breaker.Breaker // the same, by model name
}

// maxInlineWait is the longest limiter wait spent sleeping in the handler;
// longer waits re-schedule the task (without spending an attempt).
const maxInlineWait = 2 * time.Second

// maxHintHold bounds the fleet-wide hold a hinted wait sets, maxHold the
// one a Retry-After sets: an item may wait an hour for its provider, the
// whole fleet (other jobs, other models of the key) not.
const (
	maxHintHold = 10 * time.Second
	maxHold     = 5 * time.Minute
)

// defaultCompletionTokens is reserved for an item without max_tokens.
const defaultCompletionTokens = 256

// pass is what admit let through: the limiter reservation and the breaker
// decision, settled after the call.
type pass struct {
	breaker  *breaker.Breaker
	decision breaker.Decision
	reserved ratelimit.Reservation
	limited  bool
	prompt   int
}

func (g *guard) breakerFor(model string) *breaker.Breaker {
	if g.rdb == nil || g.noBreak {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if b, ok := g.byModel[model]; ok {
		return b
	}
	if g.breakers == nil {
		g.breakers = map[string]*breaker.Breaker{}
	}
	if g.byModel == nil {
		g.byModel = map[string]*breaker.Breaker{}
	}
	ep := breaker.Endpoint(g.baseURL, model)
	b, ok := g.breakers[ep]
	if !ok {
		b = breaker.New(g.rdb, ep, g.settings)
		g.breakers[ep] = b
	}
	g.byModel[model] = b
	return b
}

// limited reports whether RPM or TPM limits are set.
func (g *guard) limited() bool { return g.limiter != nil && g.limiter.Limited() }

// flush sends every breaker's batched successes: all of them when the
// worker is stopping, else those that have waited a Refresh.
func (g *guard) flush(ctx context.Context, all bool) {
	g.mu.Lock()
	bs := make([]*breaker.Breaker, 0, len(g.breakers))
	for _, b := range g.breakers {
		bs = append(bs, b)
	}
	g.mu.Unlock()
	for _, b := range bs {
		send := b.FlushDue
		if all {
			send = b.Flush
		}
		if err := send(ctx); err != nil {
			g.log.Warn("breaker: send batched successes", "err", err)
		}
	}
}

// flushLoop sends batched successes that have waited a Refresh, until stop
// is closed: a worker gone idle must not keep its successes from the
// breaker's window.
func (g *guard) flushLoop(stop <-chan struct{}) {
	every := g.settings.Refresh
	if every <= 0 {
		every = 250 * time.Millisecond
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			g.flush(ctx, false)
			cancel()
		}
	}
}

// admit waits for the rate limiter (briefly, in the handler) and asks the
// breaker. A positive wait means the call may not start now: the task is
// delayed by that much and spends nothing. prompt is the prompt's token
// count when the window check already made it (0: count it here).
func (g *guard) admit(ctx context.Context, a *attempt, it *tasks.Item, prompt int, model string, timeout time.Duration) (pass, time.Duration, error) {
	p := pass{breaker: g.breakerFor(model)}
	a.noteEndpoint(ctx, p)
	switch {
	case g.limiter != nil && !g.limited():
		// No RPM/TPM limit: only the fleet-wide hold a 429 set, which the
		// limiter reads at most every ratelimit.HoldRefresh.
		_, wait, err := g.limiter.Reserve(ctx, 0)
		if err != nil {
			return p, 0, err
		}
		if wait > 0 {
			g.metrics.waits.WithLabelValues("limiter").Inc()
			g.metrics.limiterWaits.Observe(wait.Seconds())
			return p, jitter(wait), nil
		}
	case g.limiter != nil:
		want := 0
		if g.limiter.CountsTokens() {
			p.prompt = prompt
			if p.prompt == 0 {
				p.prompt = tokens.ForModel(model).Messages(it.Messages)
			}
			want = p.prompt + defaultCompletionTokens
			if it.MaxTokens > 0 {
				want = p.prompt + it.MaxTokens
			}
		}
		waited := time.Duration(0)
		for {
			r, wait, err := g.limiter.Reserve(ctx, want)
			if err != nil {
				return p, 0, err
			}
			if wait <= 0 {
				p.reserved, p.limited = r, true
				break
			}
			if wait > maxInlineWait || waited+wait > 4*maxInlineWait {
				g.metrics.waits.WithLabelValues("limiter").Inc()
				g.metrics.limiterWaits.Observe(wait.Seconds())
				return p, jitter(wait), nil
			}
			select {
			case <-ctx.Done():
				return p, 0, ctx.Err()
			case <-time.After(wait):
			}
			waited += wait
		}
		if waited > 0 {
			g.metrics.limiterWaits.Observe(waited.Seconds())
		}
	}
	if p.breaker != nil {
		d, err := p.breaker.Allow(ctx, timeout+30*time.Second)
		if err != nil {
			g.giveBack(context.WithoutCancel(ctx), p)
			return p, 0, err
		}
		g.logTransition(a, p.breaker, d.Transition)
		g.metrics.breakerSeen(p.breaker.Endpoint(), p.breaker.ViewState())
		if !d.Allowed {
			g.giveBack(context.WithoutCancel(ctx), p)
			g.metrics.waits.WithLabelValues("breaker").Inc()
			return p, jitter(d.Wait), nil
		}
		p.decision = d
	}
	return p, 0, nil
}

func (g *guard) giveBack(ctx context.Context, p pass) {
	if p.limited {
		if err := g.limiter.Cancel(ctx, p.reserved); err != nil {
			g.log.Warn("rate limiter: give back a reservation", "err", err)
		}
	}
}

// abandon undoes a pass whose call did not happen or got no verdict.
func (g *guard) abandon(ctx context.Context, a *attempt, p pass) {
	g.giveBack(ctx, p)
	if p.breaker != nil && p.decision.Probe {
		if _, err := p.breaker.Report(ctx, p.decision, breaker.Abandoned, a.job+"/"+a.id); err != nil {
			g.log.Warn("breaker: free a probe slot", "err", err)
		}
	}
}

// settle reports a call's outcome to the limiter and the breaker.
func (g *guard) settle(ctx context.Context, a *attempt, p pass, comp *provider.Completion, pe *provider.Error) {
	if p.limited {
		used := 0
		switch {
		case comp != nil && comp.TokensIn+comp.TokensOut > 0:
			// Answered (even if the answer is not kept): real usage.
			used = comp.TokensIn + comp.TokensOut
		case pe != nil && pe.Status != 0 && pe.Status != 429:
			// The provider read the prompt even though the call failed.
			used = p.prompt
		}
		if err := g.limiter.Settle(ctx, p.reserved, used); err != nil {
			g.log.Warn("rate limiter: settle", "err", err)
		}
	}
	if pe != nil && pe.Class == provider.RateLimited && g.limiter != nil {
		// A 429's Retry-After holds back the whole fleet, not only us; a
		// wait only hinted at (in its text, in reset headers) holds it
		// briefly, never for minutes.
		hold := min(pe.RetryAfter, maxHold)
		if hold == 0 {
			hold = min(pe.RetryHint, maxHintHold)
		}
		if hold > 0 {
			if err := g.limiter.Hold(ctx, hold); err != nil {
				g.log.Warn("rate limiter: hold", "err", err)
			}
		}
	}
	if p.breaker == nil {
		return
	}
	o := breaker.Neutral
	switch {
	case pe == nil:
		o = breaker.Success
	case pe.Class == provider.RateLimited:
		o = breaker.RateLimited
	case pe.Class.FeedsBreaker():
		o = breaker.Failure
	case pe.Class == provider.Timeout || pe.Class == provider.UpstreamInvalid || pe.Class == provider.InvalidOutput:
		// No sign of health: a probe ending so must not close the breaker.
		o = breaker.Inconclusive
	case pe.Class == provider.Expired || pe.Class == provider.Cancelled:
		o = breaker.Abandoned
	}
	tr, err := p.breaker.Report(ctx, p.decision, o, a.job+"/"+a.id)
	if err != nil {
		g.log.Warn("breaker: report", "err", err)
		return
	}
	g.logTransition(a, p.breaker, tr)
	g.metrics.breakerSeen(p.breaker.Endpoint(), p.breaker.ViewState())
}

// logTransition logs a transition this worker made: each one is made by
// exactly one script run, so it is logged once fleet-wide.
func (g *guard) logTransition(a *attempt, b *breaker.Breaker, tr *breaker.Transition) {
	if tr == nil {
		return
	}
	g.metrics.breakerTransitions.WithLabelValues(tr.To).Inc()
	a.h.alerts.breakerTransition(a.job, b.Endpoint(), tr)
	g.log.Warn("circuit breaker "+tr.To, "endpoint", b.Endpoint(), "from", tr.From, "reason", tr.Reason, "job", a.job)
}
