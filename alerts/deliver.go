package alerts

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// readBatch is how many outbox entries one read takes; maxInflight is how
// many failing deliveries a worker retries at once before it stops reading
// new ones (they wait in the outbox).
const (
	readBatch   = 20
	maxInflight = 200
)

// delivery is one outbox entry on its way to the webhooks.
type delivery struct {
	streamID string
	ev       Event
	// sent[i] says webhook i acknowledged it.
	sent     []bool
	attempts int
	next     time.Time
	first    time.Time
}

// deliverTick retries due deliveries, claims those of workers that
// stopped, and reads new events.
func (a *Alerter) deliverTick(ctx context.Context) {
	if err := a.ensureGroup(ctx); err != nil {
		a.log.Warn("alerts: create outbox group", "err", err)
		return
	}
	now := a.cfg.Now()
	if len(a.inflight) > 0 {
		a.heartbeat(ctx)
	}
	for _, d := range a.inflight {
		if ctx.Err() != nil {
			return
		}
		if now.Sub(d.first) > a.cfg.MaxAge {
			a.log.Warn("alerts: giving up on an event", "event", string(d.ev.Kind), "id", d.ev.ID, "attempts", d.attempts)
			a.ack(ctx, d)
			continue
		}
		if !now.Before(d.next) {
			a.attempt(ctx, d)
		}
	}
	if len(a.inflight) >= maxInflight {
		return
	}
	claimed, cursor, err := a.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{
		Stream: a.keys.Outbox, Group: group, Consumer: a.cfg.Consumer,
		MinIdle: a.cfg.ClaimIdle, Start: a.claimCursor, Count: readBatch,
	}).Result()
	switch {
	case err == nil:
		a.claimCursor = cursor
		a.take(ctx, claimed)
	case isNoGroup(err):
		a.grouped = false
	case ctx.Err() == nil:
		a.log.Warn("alerts: claim stale deliveries", "err", err)
	}
	streams, err := a.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: group, Consumer: a.cfg.Consumer, Streams: []string{a.keys.Outbox, ">"},
		Count: readBatch, Block: -1,
	}).Result()
	switch {
	case err == nil:
		for _, s := range streams {
			a.take(ctx, s.Messages)
		}
	case errors.Is(err, redis.Nil):
	case isNoGroup(err):
		a.grouped = false
	case ctx.Err() == nil:
		a.log.Warn("alerts: read outbox", "err", err)
	}
}

func isNoGroup(err error) bool { return err != nil && strings.HasPrefix(err.Error(), "NOGROUP") }

// ensureGroup creates the consumer group, from the start of the outbox:
// events raised while no worker delivered are sent too.
func (a *Alerter) ensureGroup(ctx context.Context) error {
	if a.grouped {
		return nil
	}
	err := a.rdb.XGroupCreateMkStream(ctx, a.keys.Outbox, group, "0").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return err
	}
	a.grouped = true
	return nil
}

// heartbeat resets the idle time of this worker's deliveries waiting for a
// retry, so no other worker claims them while this one is alive. Only the
// entries this worker still owns are touched: one another worker claimed
// (this one was stalled past ClaimIdle) is dropped here, never taken back,
// so no two workers hold the same event.
func (a *Alerter) heartbeat(ctx context.Context) {
	owned, err := a.owned(ctx)
	if err != nil {
		if ctx.Err() == nil {
			a.log.Warn("alerts: heartbeat deliveries", "err", err)
		}
		return
	}
	ids := make([]string, 0, len(a.inflight))
	for id := range a.inflight {
		if owned[id] {
			ids = append(ids, id)
		} else {
			delete(a.inflight, id)
		}
	}
	if len(ids) == 0 {
		return
	}
	err = a.rdb.XClaimJustID(ctx, &redis.XClaimArgs{
		Stream: a.keys.Outbox, Group: group, Consumer: a.cfg.Consumer, Messages: ids,
	}).Err()
	if err != nil && !errors.Is(err, redis.Nil) && ctx.Err() == nil {
		a.log.Warn("alerts: heartbeat deliveries", "err", err)
	}
}

// owned returns the outbox entries this worker's consumer holds.
func (a *Alerter) owned(ctx context.Context) (map[string]bool, error) {
	pend, err := a.rdb.XPendingExt(ctx, &redis.XPendingExtArgs{
		Stream: a.keys.Outbox, Group: group, Consumer: a.cfg.Consumer,
		Start: "-", End: "+", Count: int64(maxInflight + readBatch),
	}).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	out := make(map[string]bool, len(pend))
	for _, p := range pend {
		out[p.ID] = true
	}
	return out, nil
}

// keep makes sure this worker still holds entry id and resets its idle
// time, right before a post: a batch of slow posts must not outlast
// ClaimIdle for the entries waiting their turn, and an entry another worker
// took is left to it.
func (a *Alerter) keep(ctx context.Context, id string) bool {
	owned, err := a.owned(ctx)
	if err != nil || !owned[id] {
		return false
	}
	return a.rdb.XClaimJustID(ctx, &redis.XClaimArgs{
		Stream: a.keys.Outbox, Group: group, Consumer: a.cfg.Consumer, Messages: []string{id},
	}).Err() == nil
}

// take delivers entries just read or claimed.
func (a *Alerter) take(ctx context.Context, msgs []redis.XMessage) {
	now := a.cfg.Now()
	for _, m := range msgs {
		if _, ok := a.inflight[m.ID]; ok {
			continue
		}
		raw, _ := m.Values["event"].(string)
		var ev Event
		if err := json.Unmarshal([]byte(raw), &ev); err != nil {
			// Not ours to retry forever: drop it.
			a.log.Warn("alerts: undecodable outbox entry", "stream_id", m.ID, "err", err)
			a.ack(ctx, &delivery{streamID: m.ID})
			continue
		}
		d := &delivery{streamID: m.ID, ev: ev, sent: make([]bool, len(a.cfg.Webhooks)), first: now}
		a.attempt(ctx, d)
	}
}

// attempt posts the event to every webhook that has not acknowledged it;
// it acks the entry once all have, or schedules a retry.
func (a *Alerter) attempt(ctx context.Context, d *delivery) {
	if d.ev.ID != "" && !a.keep(ctx, d.streamID) {
		// Another worker holds it now (or Redis did not answer): it is
		// theirs to send.
		delete(a.inflight, d.streamID)
		return
	}
	d.attempts++
	ok := true
	for i := range a.cfg.Webhooks {
		if d.sent[i] {
			continue
		}
		if err := a.post(ctx, i, d.ev); err != nil {
			ok = false
			if ctx.Err() != nil {
				break
			}
			a.log.Warn("alert delivery failed", "webhook", fmt.Sprintf("#%d", i+1), "event", string(d.ev.Kind),
				"id", d.ev.ID, "attempt", d.attempts, "err", err)
			continue
		}
		d.sent[i] = true
	}
	if ok {
		a.ack(ctx, d)
		a.log.Debug("alert delivered", "event", string(d.ev.Kind), "id", d.ev.ID, "attempts", d.attempts)
		return
	}
	d.next = a.cfg.Now().Add(a.backoff(d.attempts))
	a.inflight[d.streamID] = d
}

// backoff is the wait after the n-th failed attempt: exponential from
// RetryMin, capped at RetryMax, with jitter over its upper half.
func (a *Alerter) backoff(n int) time.Duration {
	d := a.cfg.RetryMin
	for i := 1; i < n && d < a.cfg.RetryMax; i++ {
		d *= 2
	}
	d = min(d, a.cfg.RetryMax)
	half := d / 2
	if half <= 0 {
		return d
	}
	return half + rand.N(half+1)
}

func (a *Alerter) ack(ctx context.Context, d *delivery) {
	if err := a.rdb.XAck(ctx, a.keys.Outbox, group, d.streamID).Err(); err != nil {
		if ctx.Err() == nil {
			a.log.Warn("alerts: ack delivery", "id", d.ev.ID, "err", err)
		}
		// Left pending: claimed and sent again later; the receiver drops
		// the redelivery by its id.
	}
	delete(a.inflight, d.streamID)
}

// post sends ev to webhook i. Its error never holds the URL.
func (a *Alerter) post(ctx context.Context, i int, ev Event) error {
	body, err := Body(ev, a.cfg.Format)
	if err != nil {
		return err
	}
	hook := a.cfg.Webhooks[i]
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, hook, bytes.NewReader(body))
	if err != nil {
		return errors.New("bad webhook URL")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "llmfleet-alerts")
	req.Header.Set("X-Llmfleet-Event", string(ev.Kind))
	req.Header.Set("X-Llmfleet-Event-Id", ev.ID)
	if a.cfg.Secret != "" {
		req.Header.Set(SignatureHeader, Sign(a.cfg.Secret, body))
	}
	resp, err := a.cfg.Client.Do(req)
	if err != nil {
		return redact(err, hook)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("receiver answered %s", resp.Status)
	}
	return nil
}

// redact drops the URL from an HTTP client error and the host from what
// is left: a webhook's URL is its credential.
func redact(err error, hook string) error {
	var ue *url.Error
	msg := err.Error()
	if errors.As(err, &ue) {
		msg = ue.Err.Error()
	}
	if u, perr := url.Parse(hook); perr == nil && u.Host != "" {
		msg = strings.ReplaceAll(msg, u.Host, "(webhook host)")
		msg = strings.ReplaceAll(msg, u.Hostname(), "(webhook host)")
	}
	msg = strings.ReplaceAll(msg, hook, "(webhook)")
	return errors.New(msg)
}
