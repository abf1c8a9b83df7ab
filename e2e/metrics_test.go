package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape reads a worker's /metrics.
func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mf, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return mf
}

// value returns the value of the series of family name whose labels
// include want, and whether there is one.
func value(mf map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f, ok := mf[name]
	if !ok {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		for k, v := range want {
			found := false
			for _, l := range m.Label {
				if l.GetName() == k && l.GetValue() == v {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// After a job, /metrics shows tokens and cost by model and type, the
// GenAI histograms by model and outcome, the breaker's state, queue depth
// and the items of an unfinished job by state.
func TestMetricsAfterAJob(t *testing.T) {
	t.Parallel()
	f := newFleet(t, "--seed", "79")
	file, _, _ := writeItems(t, 20, func(i int) (string, string) { return fmt.Sprintf("m%02d", i), fmt.Sprintf("measure %d", i) })
	if _, r := f.submit(t, file, "--job", "metrics"); r.code != 0 {
		t.Fatalf("run: exit %d", r.code)
	}
	bad := writeJSONL(t, map[string]any{"id": "bad", "prompt": "refused #fail:400"})
	if _, r := f.submit(t, bad, "--job", "metrics-bad"); r.code != 0 {
		t.Fatalf("run: exit %d", r.code)
	}
	emb := writeJSONL(t, map[string]any{"id": "e1", "input": "vector me"}, map[string]any{"id": "e2", "input": "and me"})
	if _, r := f.submit(t, emb, "--job", "metrics-emb", "--endpoint", "embeddings"); r.code != 0 {
		t.Fatalf("run: exit %d", r.code)
	}
	ts := newToolServer(t)
	parked := writeJSONL(t, map[string]any{"id": "p", "prompt": `clean #tools:clean_logs #args:clean_logs:{"host":"q"}`})
	if _, r := f.submit(t, parked, "--job", "metrics-parked", "--tools", writeHumanTools(t, ts)); r.code != 0 {
		t.Fatalf("run: exit %d", r.code)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	f.worker(t, "--concurrency", "4", "--metrics-addr", addr)
	for _, job := range []string{"metrics", "metrics-emb"} {
		if wr := runCmdTimeout(t, f.env, time.Minute, "status", "--job", job, "--wait", "--interval", "200ms"); wr.code != 0 {
			t.Fatalf("%s: status --wait exit %d", job, wr.code)
		}
	}
	waitFor(t, 30*time.Second, "the bad item to fail and the agent item to park", func() bool {
		return f.status(t, "metrics-bad").Failed == 1 && f.status(t, "metrics-parked").AwaitingInput == 1
	})
	mf := scrape(t, addr)
	check := func(name string, labels map[string]string, ok func(float64) bool, what string) {
		t.Helper()
		v, found := value(mf, name, labels)
		if !found || !ok(v) {
			t.Errorf("%s%v = %v (found %t), want %s", name, labels, v, found, what)
		}
	}
	positive := func(v float64) bool { return v > 0 }
	exactly := func(n float64) func(float64) bool { return func(v float64) bool { return v == n } }
	stats := f.stats(t)
	check("llmfleet_tokens_total", map[string]string{"model": "gpt-4o-mini", "type": "input"}, exactly(float64(stats.TokensIn)), "the simulator's input tokens")
	check("llmfleet_tokens_total", map[string]string{"model": "gpt-4o-mini", "type": "output"}, exactly(float64(stats.TokensOut)), "the simulator's output tokens")
	check("llmfleet_tokens_total", map[string]string{"model": "text-embedding-3-small", "type": "input"}, positive, "embedding tokens")
	check("llmfleet_cost_usd_total", map[string]string{"model": "gpt-4o-mini"}, positive, "a cost")
	check("gen_ai_client_operation_duration_seconds", map[string]string{"gen_ai_operation_name": "chat", "gen_ai_request_model": "gpt-4o-mini", "outcome": "ok"}, exactly(21), "21 answered chat calls (20 items and the agent's first step)")
	check("gen_ai_client_operation_duration_seconds", map[string]string{"gen_ai_operation_name": "chat", "outcome": "bad_request"}, exactly(1), "one refused call")
	check("gen_ai_client_operation_duration_seconds", map[string]string{"gen_ai_operation_name": "embeddings", "outcome": "ok"}, positive, "an embedding request")
	check("gen_ai_client_token_usage", map[string]string{"gen_ai_operation_name": "chat", "gen_ai_token_type": "input"}, exactly(21), "one sample per answered call")
	check("llmfleet_breaker_state", map[string]string{}, exactly(0), "a closed breaker")
	check("llmfleet_queue_tasks", map[string]string{"queue": "default", "state": "archived"}, exactly(1), "the archived bad item")
	check("llmfleet_queue_tasks", map[string]string{"queue": "default", "state": "retry"}, exactly(1), "the parked item's task")
	check("llmfleet_job_items", map[string]string{"job": "metrics-parked", "state": "awaiting_input"}, exactly(1), "the parked item")
	if _, found := value(mf, "llmfleet_job_items", map[string]string{"job": "metrics"}); found {
		t.Error("a finished job is still reported in llmfleet_job_items")
	}
	if !strings.Contains(fmt.Sprint(mf["gen_ai_client_operation_duration_seconds"].GetType()), "HISTOGRAM") {
		t.Errorf("gen_ai_client_operation_duration_seconds is a %v, want a histogram", mf["gen_ai_client_operation_duration_seconds"].GetType())
	}
}
