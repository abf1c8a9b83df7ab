package worker

// Embedding items are packed: the attempts of one job, model and
// dimensions that run at the same time on this worker share one request of
// up to the job's --pack inputs (OpenAI takes 2,048). The first to arrive
// leads: it waits up to packLinger for company (or until the pack is
// full), passes the fleet's limiter and breaker once for the request, makes
// the call and hands each member its vectors and its share of the usage.
// Every member then ends its own attempt as a single prompt would: commit,
// retry, fail. A 400 caused by one input fails that member only; the
// others are sent again without it (alone, when the provider did not say
// which input it refused).

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/llmfleet/llmfleet/checkpoint"
	"github.com/llmfleet/llmfleet/provider"
	"github.com/llmfleet/llmfleet/tasks"
	"github.com/llmfleet/llmfleet/tokens"
)

// packLinger is how long a pack's leader waits for more members.
const packLinger = 20 * time.Millisecond

// DefaultPack is the inputs per embedding request when a job sets none.
const DefaultPack = 64

// maxPackTokens bounds the input tokens of one request (OpenAI refuses
// requests over 300,000), with room for our count differing from theirs.
const maxPackTokens = 250_000

type packKey struct {
	job, model string
	dims       int
	// alone, when set, is the one item of a pack sent by itself.
	alone string
}

// packer gathers embedding attempts into packs.
type packer struct {
	mu   sync.Mutex
	open map[packKey]*pack
}

func newPacker() *packer { return &packer{open: map[packKey]*pack{}} }

type pack struct {
	key     packKey
	limit   int
	members []*member
	inputs  int
	tokens  int
	full    chan struct{}
	done    chan struct{}
}

// member is one attempt's part of a pack, and what the request came to
// for it.
type member struct {
	a      *attempt
	inputs []string
	tokens int // our count of its inputs

	vectors   [][]float32
	tokensIn  int
	model     string
	requestID string
	err       *provider.Error
	// resend: a neighbour's input failed the request; send again without
	// it (alone when the provider did not say which input).
	resend, alone bool
	// wait and guardErr: the request never went out (the limiter or the
	// breaker asked to wait, or could not be asked).
	wait     time.Duration
	guardErr error
	stopping bool
}

// send packs m with others of its key and returns once the request it
// went out in has answered (or never went out).
func (pk *packer) send(ctx context.Context, key packKey, limit int, m *member) {
	if limit <= 0 {
		limit = DefaultPack
	}
	pk.mu.Lock()
	p := pk.open[key]
	if p == nil || p.inputs+len(m.inputs) > limit || (len(p.members) > 0 && p.tokens+m.tokens > maxPackTokens) {
		p = &pack{key: key, limit: limit, full: make(chan struct{}), done: make(chan struct{})}
		pk.open[key] = p
	}
	leader := len(p.members) == 0
	p.members = append(p.members, m)
	p.inputs += len(m.inputs)
	p.tokens += m.tokens
	if p.inputs >= limit || p.tokens >= maxPackTokens {
		delete(pk.open, key)
		close(p.full)
	}
	pk.mu.Unlock()
	if !leader {
		<-p.done
		return
	}
	defer func() {
		// Whatever happens to the leader, its members are let go: a panic
		// (asynq recovers the leader's) must not leave them waiting.
		if r := recover(); r != nil {
			for _, m := range p.members {
				m.guardErr = fmt.Errorf("embedding request failed: %v", r)
			}
			close(p.done)
			panic(r)
		}
		close(p.done)
	}()
	t := time.NewTimer(packLinger)
	select {
	case <-p.full:
	case <-t.C:
	case <-ctx.Done():
	}
	t.Stop()
	pk.mu.Lock()
	if pk.open[key] == p {
		delete(pk.open, key)
	}
	pk.mu.Unlock()
	p.run(ctx, m.a)
}

// run makes the pack's request as the leader.
func (p *pack) run(ctx context.Context, lead *attempt) {
	h := lead.h
	pol := lead.claimed.Policy
	var all []string
	prompt := 0
	for _, m := range p.members {
		all = append(all, m.inputs...)
		prompt += m.tokens
	}
	probe := &tasks.Item{MaxTokens: 1, Messages: []tasks.Message{{Role: "user"}}}
	pass, wait, err := h.guard.admit(ctx, lead, probe, prompt, p.key.model, pol.Timeout)
	if err == nil && wait == 0 && ctx.Err() != nil {
		// The leader stops before the request went out: no call is made,
		// and every member gives its counted call back.
		h.guard.abandon(context.WithoutCancel(ctx), lead, pass)
		err = ctx.Err()
	}
	if err != nil || wait > 0 {
		for _, m := range p.members {
			m.guardErr, m.wait = err, wait
		}
		return
	}
	callCtx, cancel := attemptContext(ctx, pol)
	start := h.now()
	emb, err := h.client.Embed(callCtx, p.key.model, all, p.key.dims)
	secs := h.now().Sub(start).Seconds()
	h.metrics.callSeconds.Observe(secs)
	var pe *provider.Error
	outcome, used := "ok", 0
	if err != nil {
		pe = provider.Classify(callCtx, err, nil)
		outcome = string(pe.Class)
	} else {
		used = emb.TokensIn
	}
	h.metrics.called("embeddings", p.key.model, outcome, secs, used, 0, lead.cost(&provider.Completion{Model: p.key.model, TokensIn: used}, p.key.model))
	cancel()
	stopping := ctx.Err() != nil
	bg := context.WithoutCancel(ctx)
	var comp *provider.Completion
	if emb != nil {
		comp = &provider.Completion{Model: emb.Model, TokensIn: emb.TokensIn}
	}
	if stopping && pe != nil {
		h.guard.abandon(bg, lead, pass)
	} else {
		h.guard.settle(bg, lead, pass, comp, pe)
	}
	h.metrics.embeddingRequests.Inc()
	h.metrics.embeddingInputs.Add(float64(len(all)))
	if pe != nil {
		p.failed(pe, stopping)
		return
	}
	off, shared := 0, 0
	for i, m := range p.members {
		m.vectors = emb.Vectors[off : off+len(m.inputs)]
		off += len(m.inputs)
		m.model, m.requestID = emb.Model, emb.RequestID
		// Usage shared out by each member's share of the inputs' tokens;
		// the last takes the rounding.
		if i == len(p.members)-1 {
			m.tokensIn = emb.TokensIn - shared
		} else if prompt > 0 {
			m.tokensIn = emb.TokensIn * m.tokens / prompt
		}
		shared += m.tokensIn
	}
}

// badInput reads the index of the input a provider refused ("input[3]",
// "$.input[3]", "index 3").
var badInput = regexp.MustCompile(`input\[(\d+)\]|index (\d+)`)

// failed hands a failed request's error to the members: a 400 caused by
// one input goes to its member alone and the others are sent again.
func (p *pack) failed(pe *provider.Error, stopping bool) {
	perInput := pe.Class == provider.BadRequest || pe.Class == provider.ContextOverflow
	if perInput && len(p.members) > 1 && !stopping {
		if mm := badInput.FindStringSubmatch(pe.Message); mm != nil {
			idx, _ := strconv.Atoi(mm[1] + mm[2])
			off := 0
			for _, m := range p.members {
				if idx >= off && idx < off+len(m.inputs) {
					m.err = pe
				} else {
					m.resend = true
				}
				off += len(m.inputs)
			}
			if off > idx {
				return
			}
		}
		// Which input? Send each alone: the bad one fails on its own.
		for _, m := range p.members {
			m.err, m.resend, m.alone = nil, true, true
		}
		return
	}
	for _, m := range p.members {
		m.err, m.stopping = pe, stopping
	}
}

// runEmbedding is an embedding item's attempt: its inputs go out in a pack,
// and what came back ends the attempt as decide says.
func (a *attempt) runEmbedding(ctx context.Context, it *tasks.Item, model string) error {
	h := a.h
	pol := a.claimed.Policy
	counter := tokens.ForModel(model)
	m := &member{a: a, inputs: it.Input}
	for _, in := range it.Input {
		m.tokens += counter.Text(in)
	}
	if mt, ok := a.modelTable().Lookup(model); ok && mt.ContextWindow > 0 {
		for i, in := range it.Input {
			if n := counter.Text(in); n > mt.ContextWindow {
				reason := fmt.Sprintf("input %d is %d tokens, over the %d tokens %s takes per input", i, n, mt.ContextWindow, model)
				return a.fail(ctx, a.newFailure(provider.ContextOverflow, reason, a.claimed.Calls, 0), true)
			}
		}
	}
	calls := a.claimed.Call
	alone := false
	for {
		if !a.unsent {
			n, ok, err := a.startCall(ctx)
			if !ok {
				return err
			}
			calls = n
		}
		*m = member{a: a, inputs: m.inputs, tokens: m.tokens}
		key := packKey{job: a.job, model: model, dims: it.Dimensions}
		limit := pol.Pack
		if alone {
			limit, key.alone = len(m.inputs), a.id
		}
		h.packer.send(ctx, key, limit, m)
		switch {
		case m.guardErr != nil:
			return a.release(ctx, m.guardErr, nil, time.Second)
		case m.wait > 0:
			return a.release(ctx, errWaiting, nil, m.wait)
		}
		if m.resend {
			// A neighbour's input failed the request: this item's call
			// is not charged (still counted, still to be made).
			alone = m.alone
			continue
		}
		a.unsent = false
		n := decide(called{
			err: m.err, stopping: m.stopping, calls: calls, maxCalls: pol.MaxAttempts, retriesLeft: retriesLeft(ctx),
			// An input over the model's window cannot be cut here.
			onOverflow: checkpoint.OverflowFail,
			backoff: func(calls int, retryAfter time.Duration) time.Duration {
				return Backoff(pol.BackoffMin, pol.BackoffMax, calls, retryAfter)
			},
		})
		bg := context.WithoutCancel(ctx)
		switch n.action {
		case actCommit:
			h.metrics.calls.WithLabelValues("ok").Inc()
			return a.commitEmbedding(bg, it, m, calls, model)
		case actRelease:
			return a.release(ctx, ctx.Err(), nil, time.Second)
		case actExpire:
			return a.expire(ctx)
		case actFail:
			h.metrics.calls.WithLabelValues(string(m.err.Class)).Inc()
			return a.fail(ctx, a.failureOf(m.err, n.reason, calls), true)
		default:
			h.metrics.calls.WithLabelValues(string(m.err.Class)).Inc()
			return a.retry(bg, m.err, n, calls)
		}
	}
}

func (a *attempt) commitEmbedding(ctx context.Context, it *tasks.Item, m *member, calls int, model string) error {
	comp := &provider.Completion{Model: m.model, TokensIn: m.tokensIn}
	r := checkpoint.Result{
		ID: a.id, Model: m.model, Attempts: calls, TokensIn: m.tokensIn, FinishedAt: a.h.now().UTC(),
		Metadata: it.Metadata, CostUSD: a.cost(comp, model),
	}
	var err error
	if len(it.Input) == 1 {
		r.Embedding, err = jsonOf(m.vectors[0])
	} else {
		r.Embedding, err = jsonOf(m.vectors)
	}
	if err != nil {
		return a.fail(ctx, a.newFailure(provider.UpstreamInvalid, "embedding cannot be encoded: "+err.Error(), calls, 0), true)
	}
	// No body is kept even for batch items: export rebuilds OpenAI's
	// shape from the result, which would otherwise hold the vector twice.
	return a.record(ctx, func(ctx context.Context) (checkpoint.Committed, error) {
		return a.h.store.Commit(ctx, a.job, a.token, r)
	})
}

func jsonOf(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	return b, nil
}
