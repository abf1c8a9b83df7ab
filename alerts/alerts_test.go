package alerts

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llmfleet/llmfleet/breaker"
	"github.com/llmfleet/llmfleet/checkpoint"
	"github.com/llmfleet/llmfleet/internal/testredis"
)

// receiver is a webhook that records what it got and fails its first
// failFirst requests with 503.
type receiver struct {
	srv       *httptest.Server
	mu        sync.Mutex
	failFirst int
	requests  int
	got       []delivered
}

type delivered struct {
	at   time.Time
	body []byte
	sig  string
	ok   bool
}

func newReceiver(t *testing.T, failFirst int) *receiver {
	t.Helper()
	r := &receiver{failFirst: failFirst}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.requests++
		ok := r.requests > r.failFirst
		r.got = append(r.got, delivered{at: time.Now(), body: body, sig: req.Header.Get(SignatureHeader), ok: ok})
		r.mu.Unlock()
		if !ok {
			http.Error(w, "down", http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) deliveries() []delivered {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivered(nil), r.got...)
}

// accepted returns the events the receiver acknowledged, decoded.
func (r *receiver) accepted(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, d := range r.deliveries() {
		if !d.ok {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(d.body, &m); err != nil {
			t.Fatalf("body %s: %v", d.body, err)
		}
		out = append(out, m)
	}
	return out
}

type testBundle struct {
	ctx   context.Context
	rdb   *redis.Client
	store *checkpoint.Store
	keys  checkpoint.AlertKeySet
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	rdb := testredis.Start(t).Client(t)
	return &testBundle{ctx: t.Context(), rdb: rdb, store: checkpoint.New(rdb), keys: checkpoint.AlertKeys()}
}

// alerter is one "worker"'s alerts on the bundle's Redis; its loops are not
// started unless the test starts them: ticks are driven by hand.
func (b *testBundle) alerter(t *testing.T, cfg Config) *Alerter {
	t.Helper()
	if cfg.RetryMin == 0 {
		cfg.RetryMin, cfg.RetryMax = 10*time.Millisecond, 50*time.Millisecond
	}
	a, err := New(b.rdb, b.store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if a == nil {
		t.Fatal("New returned no alerter with a webhook")
	}
	return a
}

func (b *testBundle) outboxLen(t *testing.T) int64 {
	t.Helper()
	n, err := b.rdb.XLen(b.ctx, b.keys.Outbox).Result()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var t0 = time.Date(2030, 3, 4, 5, 6, 7, 0, time.UTC)

func TestFormats(t *testing.T) {
	t.Parallel()
	ev := Event{ID: "evt_1", Kind: ErrorRate, Job: "j1", At: t0, Details: map[string]any{
		"failed": 10, "items": 40, "rate": 0.25, "threshold": 0.1, "window": "5m0s", "id": "not me",
	}}
	t.Run("json is the event, details flattened", func(t *testing.T) {
		b, err := Body(ev, JSON)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		if m["id"] != "evt_1" || m["event"] != "error_rate" || m["job"] != "j1" || m["at"] != "2030-03-04T05:06:07Z" ||
			m["failed"] != 10.0 || m["items"] != 40.0 || m["rate"] != 0.25 {
			t.Errorf("json body %s", b)
		}
		var back Event
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		again, _ := Body(back, JSON)
		if !bytes.Equal(again, b) {
			t.Errorf("an event read back from the outbox is sent as %s, raised as %s", again, b)
		}
	})
	t.Run("slack is text and blocks", func(t *testing.T) {
		b, err := Body(ev, Slack)
		if err != nil {
			t.Fatal(err)
		}
		var m struct {
			Text   string           `json:"text"`
			Blocks []map[string]any `json:"blocks"`
		}
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(m.Text, "j1") || !strings.Contains(m.Text, "10 of 40") || len(m.Blocks) != 2 {
			t.Errorf("slack body %s", b)
		}
	})
	t.Run("job_finished text carries the summary", func(t *testing.T) {
		r := 0.75
		e := Event{ID: "evt_2", Kind: JobFinished, Job: "j1", At: t0, Details: map[string]any{"summary": Summary{Done: 30, Failed: 10, Total: 40, SuccessRate: &r}}}
		if txt := e.Text(); !strings.Contains(txt, "30 done, 10 failed of 40") || !strings.Contains(txt, "75.0%") {
			t.Errorf("text %q", txt)
		}
	})
	t.Run("unknown format", func(t *testing.T) {
		if _, err := Body(ev, "xml"); err == nil || !strings.Contains(err.Error(), "--alert-format") {
			t.Errorf("Body(xml) = %v, want an error naming --alert-format", err)
		}
	})
}

func TestSignature(t *testing.T) {
	t.Parallel()
	body := []byte(`{"id":"evt_1"}`)
	// echo -n '{"id":"evt_1"}' | openssl dgst -sha256 -hmac s3cret
	sig := Sign("s3cret", body)
	if !strings.HasPrefix(sig, "sha256=") || len(sig) != len("sha256=")+64 {
		t.Fatalf("signature %q", sig)
	}
	if !Verify("s3cret", body, sig) {
		t.Error("a signature does not verify")
	}
	if Verify("other", body, sig) || Verify("s3cret", []byte(`{"id":"evt_2"}`), sig) {
		t.Error("a signature verifies with another secret or body")
	}
}

func TestValidateNamesTheFlagAndHidesTheURL(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Webhooks: []string{"ftp://hooks.example/tok-123"}}, "--alert-webhook #1"},
		{Config{Webhooks: []string{"http://ok.example/", "::tok-123"}}, "--alert-webhook #2"},
		{Config{Format: "xml"}, "--alert-format"},
		{Config{ErrorRate: 1.5}, "--alert-error-rate"},
		{Config{MinItems: -1}, "--alert-min-items"},
		{Config{Window: 10 * time.Millisecond}, "--alert-window"},
		{Config{Cooldown: -time.Second}, "--alert-cooldown"},
	} {
		err := c.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Validate(%+v) = %v, want an error naming %s", c.cfg, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "tok-123") {
			t.Errorf("error %q quotes the webhook", err)
		}
	}
	if a, err := New(nil, nil, Config{}); a != nil || err != nil {
		t.Errorf("New without webhooks = %v, %v; want alerts off", a, err)
	}
}

// Two workers that both see the same transition raise it once for the
// fleet, and the receiver gets it once.
func TestSameEventFromTwoWorkersIsRaisedOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	recv := newReceiver(t, 0)
	cfg := Config{Webhooks: []string{recv.srv.URL}}
	w1, w2 := b.alerter(t, cfg), b.alerter(t, cfg)
	tr := breaker.Transition{From: "closed", To: "open", At: t0, Reason: "10 items failed in a row"}
	w1.BreakerTransition("j1", "ep1", tr)
	w2.BreakerTransition("j1", "ep1", tr)
	// A failed probe reopening the breaker is the same outage.
	w1.BreakerTransition("j1", "ep1", breaker.Transition{From: "half-open", To: "open", At: t0.Add(time.Second)})
	w1.tick(b.ctx)
	w2.tick(b.ctx)
	if n := b.outboxLen(t); n != 1 {
		t.Fatalf("outbox holds %d events, want 1", n)
	}
	for range 3 {
		w1.deliverTick(b.ctx)
		w2.deliverTick(b.ctx)
	}
	got := recv.accepted(t)
	if len(got) != 1 || got[0]["event"] != "breaker_open" || got[0]["endpoint"] != "ep1" || got[0]["job"] != "j1" {
		t.Fatalf("receiver got %v, want one breaker_open", got)
	}
	pending, err := b.rdb.XPending(b.ctx, b.keys.Outbox, group).Result()
	if err != nil || pending.Count != 0 {
		t.Errorf("pending after delivery = %+v, %v; want none", pending, err)
	}
}

func TestOutboxIsBounded(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := b.alerter(t, Config{Webhooks: []string{"http://127.0.0.1:1/"}, MaxEvents: 5})
	for i := range 20 {
		a.BudgetPaused(fmt.Sprintf("job%d", i), "budget_usd reached")
	}
	a.tick(b.ctx)
	if n := b.outboxLen(t); n != 5 {
		t.Fatalf("outbox holds %d events, want the bound 5", n)
	}
	last, err := b.rdb.XRevRangeN(b.ctx, b.keys.Outbox, "+", "-", 1).Result()
	if err != nil || len(last) != 1 || !strings.Contains(last[0].Values["event"].(string), `"job19"`) {
		t.Errorf("newest outbox entry %v, %v; want the last raised (the oldest are dropped)", last, err)
	}
}

// A receiver failing its first 3 requests gets the event on the 4th, after
// growing waits, signed every time; the entry is acknowledged after.
func TestDeliveryRetriesWithBackoff(t *testing.T) {
	t.Parallel()
	b := setup(t)
	recv := newReceiver(t, 3)
	a := b.alerter(t, Config{Webhooks: []string{recv.srv.URL}, Secret: "s3cret", Interval: 5 * time.Millisecond,
		RetryMin: 40 * time.Millisecond, RetryMax: 400 * time.Millisecond})
	a.Start()
	defer a.Shutdown()
	a.BudgetPaused("j1", "budget_usd reached")
	waitFor(t, 10*time.Second, "the event to be accepted", func() bool { return len(recv.accepted(t)) == 1 })
	ds := recv.deliveries()
	if len(ds) != 4 {
		t.Fatalf("%d requests, want 4 (3 failed, 1 accepted)", len(ds))
	}
	for i, d := range ds {
		if !Verify("s3cret", d.body, d.sig) {
			t.Errorf("request %d: signature %q does not verify", i+1, d.sig)
		}
		if i > 0 {
			// Attempt n waits at least half of RetryMin·2^(n-1).
			min := 20 * time.Millisecond << (i - 1)
			if gap := d.at.Sub(ds[i-1].at); gap < min {
				t.Errorf("retry %d came %s after the last, want at least %s", i, gap, min)
			}
		}
		if !bytes.Equal(d.body, ds[0].body) {
			t.Errorf("request %d body differs: a redelivery must keep the id", i+1)
		}
	}
	waitFor(t, 5*time.Second, "the entry to be acknowledged", func() bool {
		p, err := b.rdb.XPending(b.ctx, b.keys.Outbox, group).Result()
		return err == nil && p.Count == 0
	})
}

// A worker that stops before a receiver accepted its event leaves it
// pending; another worker claims and delivers it.
func TestDeliveriesOfAStoppedWorkerAreClaimed(t *testing.T) {
	t.Parallel()
	b := setup(t)
	down, up := newReceiver(t, 1000), newReceiver(t, 0)
	w1 := b.alerter(t, Config{Webhooks: []string{down.srv.URL}})
	w1.BudgetPaused("j1", "budget")
	w1.tick(b.ctx)
	w1.deliverTick(b.ctx) // fails, stays pending with w1; w1 then "dies"
	if len(down.deliveries()) != 1 {
		t.Fatalf("the first worker made %d requests, want 1", len(down.deliveries()))
	}
	w2 := b.alerter(t, Config{Webhooks: []string{up.srv.URL}, ClaimIdle: 50 * time.Millisecond})
	waitFor(t, 5*time.Second, "the second worker to deliver the event", func() bool {
		w2.deliverTick(b.ctx)
		return len(up.accepted(t)) == 1
	})
	if got := up.accepted(t)[0]["event"]; got != "budget_paused" {
		t.Errorf("claimed event %v", got)
	}
}

func TestErrorRateRule(t *testing.T) {
	t.Parallel()
	cfg := func() Config {
		return Config{Webhooks: []string{"http://127.0.0.1:1/"}, ErrorRate: 0.1, MinItems: 20, Window: time.Minute, Cooldown: time.Hour}
	}
	finish := func(a *Alerter, job string, ok, failed int) {
		for range ok {
			a.ItemFinished(job, false)
		}
		for range failed {
			a.ItemFinished(job, true)
		}
	}
	t.Run("below the minimum of items no alert", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		a := b.alerter(t, cfg())
		finish(a, "j1", 0, 19)
		a.tick(b.ctx)
		if n := b.outboxLen(t); n != 0 {
			t.Fatalf("19 failed items of 19 raised %d events, want none below --alert-min-items 20", n)
		}
	})
	t.Run("at the rate no alert", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		a := b.alerter(t, cfg())
		finish(a, "j1", 18, 2)
		a.tick(b.ctx)
		if n := b.outboxLen(t); n != 0 {
			t.Fatalf("2 failed of 20 (rate 0.1, not above) raised %d events", n)
		}
	})
	t.Run("fleet-wide counts, once until the cooldown", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		c := cfg()
		c.Cooldown = 300 * time.Millisecond
		w1, w2 := b.alerter(t, c), b.alerter(t, c)
		// Each worker alone is below the minimum; the fleet is not.
		finish(w1, "j1", 7, 3)
		finish(w2, "j1", 7, 3)
		w1.tick(b.ctx)
		if n := b.outboxLen(t); n != 0 {
			t.Fatalf("%d events with 10 items shared, want none", n)
		}
		w2.tick(b.ctx)
		w1.tick(b.ctx)
		if n := b.outboxLen(t); n != 1 {
			t.Fatalf("%d events, want exactly 1 for the fleet", n)
		}
		finish(w1, "j1", 0, 5)
		w1.tick(b.ctx)
		w2.tick(b.ctx)
		if n := b.outboxLen(t); n != 1 {
			t.Fatalf("%d events within the cooldown, want still 1", n)
		}
		msgs, _ := b.rdb.XRange(b.ctx, b.keys.Outbox, "-", "+").Result()
		var ev Event
		if err := json.Unmarshal([]byte(msgs[0].Values["event"].(string)), &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Kind != ErrorRate || string(ev.Details["items"].(json.RawMessage)) != "20" || string(ev.Details["failed"].(json.RawMessage)) != "6" {
			t.Errorf("event %+v, want error_rate with 6 failed of 20", ev)
		}
		waitFor(t, 5*time.Second, "a second event after the cooldown", func() bool {
			w2.tick(b.ctx)
			return b.outboxLen(t) == 2
		})
	})
	t.Run("old buckets leave the window", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		now := t0
		var mu sync.Mutex
		c := cfg()
		c.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
		a := b.alerter(t, c)
		finish(a, "j1", 0, 15)
		a.tick(b.ctx)
		mu.Lock()
		now = now.Add(2 * time.Minute)
		mu.Unlock()
		finish(a, "j1", 15, 0)
		a.tick(b.ctx)
		if n := b.outboxLen(t); n != 0 {
			t.Fatalf("failures from before the window raised %d events", n)
		}
	})
}

func TestJobFinishedCarriesTheSummary(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := checkpoint.Policy{Model: "gpt-test", Template: "{{.text}}", Queue: "default", MaxAttempts: 1, BackoffMin: time.Second, BackoffMax: time.Second, Timeout: time.Second, Retention: time.Hour}
	if _, _, err := b.store.Open(b.ctx, "j1", p); err != nil {
		t.Fatal(err)
	}
	var entries []checkpoint.Entry
	for i := range 4 {
		id := fmt.Sprint(i)
		entries = append(entries, checkpoint.Entry{ID: id, Canonical: []byte(`{"id":"` + id + `","prompt":"p"}`)})
	}
	if _, err := b.store.Record(b.ctx, "j1", entries); err != nil {
		t.Fatal(err)
	}
	w1, w2 := b.alerter(t, Config{Webhooks: []string{"http://127.0.0.1:1/"}}), b.alerter(t, Config{Webhooks: []string{"http://127.0.0.1:1/"}})
	for i, e := range entries {
		tok := "tok" + e.ID
		if _, err := b.store.Claim(b.ctx, "j1", e.ID, tok); err != nil {
			t.Fatal(err)
		}
		w := []*Alerter{w1, w2}[i%2]
		if i == 0 {
			if _, err := b.store.Fail(b.ctx, "j1", e.ID, tok, checkpoint.Failure{Class: "bad_request", Reason: "400", Attempts: 1}); err != nil {
				t.Fatal(err)
			}
			w.ItemFinished("j1", true)
			continue
		}
		if _, err := b.store.Commit(b.ctx, "j1", tok, checkpoint.Result{ID: e.ID, Output: "ok", Model: "gpt-test", Attempts: 1, FinishedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		w.ItemFinished("j1", false)
		w1.tick(b.ctx) // not finished yet until the last
	}
	w1.tick(b.ctx)
	w2.tick(b.ctx)
	msgs, err := b.rdb.XRange(b.ctx, b.keys.Outbox, "-", "+").Result()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("outbox %v, %v; want one job_finished", msgs, err)
	}
	var got struct {
		Event   string  `json:"event"`
		Job     string  `json:"job"`
		Summary Summary `json:"summary"`
	}
	if err := json.Unmarshal([]byte(msgs[0].Values["event"].(string)), &got); err != nil {
		t.Fatal(err)
	}
	s := got.Summary
	if got.Event != "job_finished" || got.Job != "j1" || s.Done != 3 || s.Failed != 1 || s.Total != 4 || s.SuccessRate == nil || *s.SuccessRate != 0.75 || s.State != "done" {
		t.Errorf("event %s", msgs[0].Values["event"])
	}
}

// The webhook URL and the secret are in no log line and no Redis value,
// even when deliveries fail.
func TestSecretsStayInMemory(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const token, secret = "hooktoken-5f1e", "alertsecret-9a2c"
	var logs bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return logs.Write(p) }), &slog.HandlerOptions{Level: slog.LevelDebug}))
	down := newReceiver(t, 1000)
	a := b.alerter(t, Config{Webhooks: []string{down.srv.URL + "/" + token, "http://127.0.0.1:1/" + token}, Secret: secret, Logger: log})
	a.Start()
	a.BudgetPaused("j1", "budget")
	a.ItemFinished("j1", true)
	logged := func() string { mu.Lock(); defer mu.Unlock(); return logs.String() }
	waitFor(t, 5*time.Second, "both webhooks' failures logged", func() bool {
		out := logged()
		return strings.Contains(out, "webhook=#1") && strings.Contains(out, "webhook=#2")
	})
	a.Shutdown()
	out := logged()
	if strings.Contains(out, token) || strings.Contains(out, secret) || strings.Contains(out, "127.0.0.1") {
		t.Errorf("logs hold the webhook or the secret:\n%s", out)
	}
	keys, _ := b.rdb.Keys(b.ctx, "*").Result()
	if len(keys) == 0 {
		t.Fatal("no key in Redis: the scan looks at nothing")
	}
	for _, k := range keys {
		var vals []string
		switch b.rdb.Type(b.ctx, k).Val() {
		case "string":
			vals = append(vals, b.rdb.Get(b.ctx, k).Val())
		case "hash":
			for f, v := range b.rdb.HGetAll(b.ctx, k).Val() {
				vals = append(vals, f, v)
			}
		case "stream":
			for _, m := range b.rdb.XRange(b.ctx, k, "-", "+").Val() {
				vals = append(vals, fmt.Sprint(m.Values))
			}
		}
		for _, v := range append(vals, k) {
			if strings.Contains(v, token) || strings.Contains(v, secret) {
				t.Errorf("Redis key %s holds the webhook or the secret", k)
			}
		}
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
