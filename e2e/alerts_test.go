package e2e

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// alertReceiver is a webhook in the test process that fails its first
// failFirst requests with 503 and records every request.
type alertReceiver struct {
	srv       *httptest.Server
	path      string
	failFirst int

	mu   sync.Mutex
	reqs []alertRequest
}

type alertRequest struct {
	path   string
	body   []byte
	sig    string
	status int
	ev     alertEvent
}

type alertEvent struct {
	ID       string `json:"id"`
	Event    string `json:"event"`
	Job      string `json:"job"`
	At       string `json:"at"`
	Endpoint string `json:"endpoint"`
	Failed   int    `json:"failed"`
	Items    int    `json:"items"`
	Summary  *struct {
		State       string   `json:"state"`
		Total       int      `json:"total"`
		Done        int      `json:"done"`
		Failed      int      `json:"failed"`
		SuccessRate *float64 `json:"success_rate"`
	} `json:"summary"`
}

func newAlertReceiver(t *testing.T, path string, failFirst int) *alertReceiver {
	t.Helper()
	r := &alertReceiver{path: path, failFirst: failFirst}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		ar := alertRequest{path: req.URL.Path, body: body, sig: req.Header.Get("X-Llmfleet-Signature"), status: http.StatusOK}
		_ = json.Unmarshal(body, &ar.ev)
		r.mu.Lock()
		if len(r.reqs) < r.failFirst {
			ar.status = http.StatusServiceUnavailable
		}
		r.reqs = append(r.reqs, ar)
		r.mu.Unlock()
		w.WriteHeader(ar.status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *alertReceiver) requests() []alertRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]alertRequest(nil), r.reqs...)
}

// accepted returns the distinct events the receiver acknowledged, by id, as
// a receiver that drops redeliveries sees them.
func (r *alertReceiver) accepted() map[string]alertEvent {
	out := map[string]alertEvent{}
	for _, q := range r.requests() {
		if q.status == http.StatusOK {
			out[q.ev.ID] = q.ev
		}
	}
	return out
}

// distinct returns the accepted events of kind (and job, unless "").
func (r *alertReceiver) distinct(kind, job string) []alertEvent {
	var out []alertEvent
	for _, e := range r.accepted() {
		if e.Event == kind && (job == "" || e.Job == job) {
			out = append(out, e)
		}
	}
	return out
}

// Two workers with alerts on, a receiver failing its first 3 deliveries:
// a job whose failure rate passes the threshold raises one error_rate for
// the fleet, job_finished carries the summary, an outage raises one
// breaker_open and one breaker_closed, every delivery is signed, and
// neither the webhook URL nor the secret is in a log or in Redis.
func TestAlertWebhooksOncePerFleet(t *testing.T) {
	t.Parallel()
	token := fmt.Sprintf("hooktoken%d", time.Now().UnixNano())
	secret := fmt.Sprintf("alertsecret%d", time.Now().UnixNano())
	recv := newAlertReceiver(t, "/"+token, 3)
	hook := recv.srv.URL + "/" + token

	f := newFleet(t, "--seed", "21", "--latency", "30ms")
	env := append(append([]string(nil), f.env...), "LLMFLEET_ALERT_SECRET="+secret)
	var workers []*proc
	for range 2 {
		workers = append(workers, start(t, env, "worker", "--check-interval", "1s", "--shutdown-timeout", "5s",
			"--concurrency", "4", "--alert-webhook", hook, "--alert-error-rate", "0.1", "--alert-min-items", "20",
			"--breaker-first-cooldown", "1s", "--breaker-cooldown", "2s"))
	}

	// (a, b) 40 items, every 4th a permanent 400: 25% failed.
	rate, _, _ := writeItems(t, 40, func(i int) (string, string) {
		if i%4 == 3 {
			return fmt.Sprintf("r%02d", i), fmt.Sprintf("rate %d #fail:400", i)
		}
		return fmt.Sprintf("r%02d", i), fmt.Sprintf("rate %d", i)
	})
	if _, r := f.submit(t, rate, "--job", "rate", "--max-attempts", "2"); r.code != 0 {
		t.Fatalf("run rate: exit %d: %s", r.code, r.stderr)
	}
	waitFor(t, 30*time.Second, "error_rate and job_finished of job rate", func() bool {
		return len(recv.distinct("error_rate", "rate")) > 0 && len(recv.distinct("job_finished", "rate")) > 0
	})

	// (c) an outage mid-job.
	out, _, _ := writeItems(t, 300, func(i int) (string, string) { return fmt.Sprintf("o%03d", i), fmt.Sprintf("outage %d", i) })
	if _, r := f.submit(t, out, "--job", "out", "--max-attempts", "20", "--backoff-max", "2s"); r.code != 0 {
		t.Fatalf("run out: exit %d: %s", r.code, r.stderr)
	}
	waitFor(t, 30*time.Second, "20 items of job out done", func() bool { return f.status(t, "out").Done >= 20 })
	f.setFaults(t, "503=1")
	waitFor(t, 30*time.Second, "breaker_open", func() bool { return len(recv.distinct("breaker_open", "")) > 0 })
	f.setFaults(t, "")
	waitFor(t, 30*time.Second, "breaker_closed", func() bool { return len(recv.distinct("breaker_closed", "")) > 0 })
	waitFor(t, 60*time.Second, "job_finished of job out", func() bool { return len(recv.distinct("job_finished", "out")) > 0 })
	for _, w := range workers {
		if code := w.stop(t, 15*time.Second); code != 0 {
			t.Errorf("worker exit %d", code)
		}
	}

	reqs := recv.requests()
	perID := map[string]int{}
	for _, q := range reqs {
		perID[q.ev.ID]++
	}
	t.Logf("%d deliveries of %d distinct events: %v", len(reqs), len(perID), perID)
	if got := recv.distinct("error_rate", "rate"); len(got) != 1 {
		t.Errorf("%d distinct error_rate events for job rate, want exactly 1 for the fleet: %+v", len(got), got)
	} else if got[0].Failed < 2 || got[0].Items < 20 {
		t.Errorf("error_rate %+v: want at least 20 items in the window", got[0])
	}
	if got := recv.distinct("error_rate", "out"); len(got) != 0 {
		t.Errorf("job out (no item failed) raised error_rate: %+v", got)
	}
	if got := recv.distinct("job_finished", "rate"); len(got) != 1 {
		t.Errorf("%d job_finished for job rate, want 1", len(got))
	} else if s := got[0].Summary; s == nil || s.Done != 30 || s.Failed != 10 || s.Total != 40 || s.SuccessRate == nil || *s.SuccessRate != 0.75 {
		t.Errorf("job_finished summary %+v, want 30 done, 10 failed of 40, success rate 0.75", s)
	}
	if o, c := recv.distinct("breaker_open", ""), recv.distinct("breaker_closed", ""); len(o) != 1 || len(c) != 1 {
		t.Errorf("the outage raised %d breaker_open and %d breaker_closed, want 1 and 1", len(o), len(c))
	}
	if len(reqs) < len(perID)+3 {
		t.Errorf("%d deliveries of %d events: the 3 refused ones were not retried", len(reqs), len(perID))
	}
	// (d) signatures.
	for i, q := range reqs {
		m := hmac.New(sha256.New, []byte(secret))
		m.Write(q.body)
		if want := "sha256=" + hex.EncodeToString(m.Sum(nil)); !hmac.Equal([]byte(q.sig), []byte(want)) {
			t.Errorf("delivery %d (%s): signature %q does not verify", i+1, q.ev.Event, q.sig)
		}
		if q.path != "/"+token {
			t.Errorf("delivery %d went to %q", i+1, q.path)
		}
	}
	// (e) the URL and the secret stay in the workers' memory.
	for i, w := range workers {
		logs := w.out.String()
		for _, s := range []string{token, secret, recv.srv.URL} {
			if strings.Contains(logs, s) {
				t.Errorf("worker %d log holds %q", i+1, s)
			}
		}
		if !strings.Contains(logs, "alerts on") {
			t.Errorf("worker %d did not log that alerts are on", i+1)
		}
	}
	for _, s := range []string{token, secret} {
		if where := redisHoldsAnywhere(t, f.redis.Addr, s); where != "" {
			t.Errorf("Redis key %s holds %q", where, s)
		}
	}
	if where := redisHoldsAnywhere(t, f.redis.Addr, `"event":"job_finished"`); where == "" {
		t.Error("no Redis value holds an event: the scan looks at nothing")
	}
}

// redisHoldsAnywhere is redisHolds that also reads streams (the alerts'
// outbox).
func redisHoldsAnywhere(t *testing.T, addr, s string) string {
	t.Helper()
	if where := redisHolds(t, addr, s); where != "" {
		return where
	}
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	iter := rdb.ScanType(ctx, 0, "*", 1000, "stream").Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		for _, m := range rdb.XRange(ctx, k, "-", "+").Val() {
			for f, v := range m.Values {
				if strings.Contains(f, s) || strings.Contains(fmt.Sprint(v), s) {
					return k
				}
			}
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return ""
}
