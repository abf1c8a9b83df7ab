package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

type fullResult struct {
	ID            string  `json:"id"`
	Output        string  `json:"output"`
	Attempts      int     `json:"attempts"`
	Truncated     bool    `json:"truncated"`
	TokensDropped int     `json:"tokens_dropped"`
	TokensIn      int     `json:"tokens_in"`
	TokensOut     int     `json:"tokens_out"`
	CostUSD       float64 `json:"cost_usd"`
}

func (f *fleet) results(t *testing.T, job string) map[string]fullResult {
	t.Helper()
	r := f.producer(t, nil, "export", "--job", job)
	if r.code != 0 {
		t.Fatalf("export: exit %d: %s", r.code, r.stderr)
	}
	out := map[string]fullResult{}
	for line := range strings.SplitSeq(strings.TrimSpace(r.stdout), "\n") {
		if line == "" {
			continue
		}
		var res fullResult
		if err := json.Unmarshal([]byte(line), &res); err != nil {
			t.Fatal(err)
		}
		out[res.ID] = res
	}
	return out
}

// words returns a prompt of about n tokens.
func words(n int) string { return strings.Repeat("alpha beta gamma delta ", n/4) }

// Prompts over the context window are truncated before the call; one the
// provider still finds too long (its count differs from ours) is shrunk with
// the limit it reports and done; with --on-overflow fail both end
// context_overflow after zero or one call.
func TestContextOverflowRecovery(t *testing.T) {
	t.Parallel()
	f := newFleet(t, "--seed", "41", "--context-limit", "1000")
	big := "far over " + words(3000)
	mid := "a bit over " + words(1600)
	fileBig, _, _ := writeItems(t, 2, func(i int) (string, string) {
		if i == 0 {
			return "big", big
		}
		return "small", "short prompt"
	})
	fileMid, _, _ := writeItems(t, 1, func(int) (string, string) { return "mid", mid })
	run := func(job, file string, args ...string) {
		t.Helper()
		if _, r := f.submit(t, file, append([]string{"--job", job, "--max-attempts", "3"}, args...)...); r.code != 0 {
			t.Fatalf("run %s: exit %d: %s", job, r.code, r.stderr)
		}
	}
	// Our window matches the simulator's: truncated before the call.
	run("pre", fileBig, "--context-limit", "1000", "--reserve-output", "100")
	// Our window is larger than the simulator's: it answers 400
	// context_length_exceeded, and the worker shrinks with its numbers.
	run("post", fileMid, "--context-limit", "8000")
	run("prefail", fileBig, "--context-limit", "1000", "--on-overflow", "fail")
	run("postfail", fileMid, "--context-limit", "8000", "--on-overflow", "fail")
	f.worker(t)
	for job, want := range map[string]int{"pre": 0, "post": 0, "prefail": 4, "postfail": 4} {
		if r := f.producer(t, nil, "status", "--job", job, "--wait", "--interval", "200ms"); r.code != want {
			t.Fatalf("status --wait --job %s: exit %d, want %d: %s", job, r.code, want, r.stdout)
		}
	}
	s := f.stats(t)

	pre := f.results(t, "pre")["big"]
	if !pre.Truncated || pre.TokensDropped < 2000 || pre.Attempts != 1 {
		t.Errorf("pre-flight: %+v, want truncated, >2000 tokens dropped, one call", pre)
	}
	if pre.TokensIn > 1000 {
		t.Errorf("pre-flight: the provider counted %d prompt tokens, over its 1000", pre.TokensIn)
	}
	if f.results(t, "pre")["small"].Truncated {
		t.Errorf("a short prompt was marked truncated")
	}
	post := f.results(t, "post")["mid"]
	if !post.Truncated || post.Attempts != 2 || post.TokensIn > 1000 {
		t.Errorf("recovery: %+v, want truncated after 2 calls, prompt within 1000", post)
	}
	if n := s.ByContent[key(mid)]; n < 2 {
		t.Errorf("simulator saw %d calls for the mid item across jobs", n)
	}
	if n := s.ByContent[key(big)]; n != 0 {
		t.Errorf("the untruncated big prompt reached the simulator %d times", n)
	}
	for job, calls := range map[string]int{"prefail": 0, "postfail": 1} {
		l := f.failed(t, "--job", job)
		if len(l.Items) != 1 || l.Items[0].Class != "context_overflow" || l.Items[0].Attempts != calls {
			t.Errorf("%s: failed %+v, want one context_overflow after %d calls", job, l.Items, calls)
			continue
		}
		if job == "postfail" && !(strings.Contains(l.Items[0].Reason, "1000") && strings.Contains(l.Items[0].Reason, "resulted in")) {
			t.Errorf("%s: reason %q should give the provider's limit and count", job, l.Items[0].Reason)
		}
	}
}

// Token counts in results are the simulator's usage, job totals are their
// sum, and the per-model accounting and cost estimate are in status.
func TestTokenAccounting(t *testing.T) {
	t.Parallel()
	f := newFleet(t, "--seed", "42")
	file, _, _ := writeItems(t, 30, func(i int) (string, string) {
		return fmt.Sprint(i), fmt.Sprintf("count me %d %s", i, words(i*10))
	})
	if _, r := f.submit(t, file, "--job", "acct", "--model", "gpt-4o-mini"); r.code != 0 {
		t.Fatal("run")
	}
	f.worker(t)
	if r := f.producer(t, nil, "status", "--job", "acct", "--wait", "--interval", "200ms"); r.code != 0 {
		t.Fatalf("status --wait exit %d", r.code)
	}
	var in, out int
	var cost float64
	for _, r := range f.results(t, "acct") {
		in, out, cost = in+r.TokensIn, out+r.TokensOut, cost+r.CostUSD
	}
	s := f.stats(t)
	if in != s.TokensIn || out != s.TokensOut {
		t.Errorf("results sum to %d in / %d out tokens, the simulator counted %d / %d", in, out, s.TokensIn, s.TokensOut)
	}
	r := f.producer(t, nil, "status", "--job", "acct", "--json")
	var st struct {
		TokensIn  int     `json:"tokens_in"`
		TokensOut int     `json:"tokens_out"`
		CostUSD   float64 `json:"cost_usd"`
		Models    map[string]struct {
			Items     int     `json:"items"`
			TokensIn  int     `json:"tokens_in"`
			TokensOut int     `json:"tokens_out"`
			CostUSD   float64 `json:"cost_usd"`
		} `json:"models"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatal(err)
	}
	if st.TokensIn != in || st.TokensOut != out {
		t.Errorf("job totals %d/%d, want the sum over items %d/%d", st.TokensIn, st.TokensOut, in, out)
	}
	m := st.Models["gpt-4o-mini"]
	if m.Items != 30 || m.TokensIn != in || m.TokensOut != out {
		t.Errorf("per-model usage %+v, want 30 items and the job's tokens", st.Models)
	}
	// gpt-4o-mini: $0.15 in, $0.60 out per million tokens.
	want := float64(in)*0.15/1e6 + float64(out)*0.60/1e6
	if diff := st.CostUSD - want; diff > 1e-5 || diff < -1e-5 || cost < want-1e-5 {
		t.Errorf("cost %.6f (items sum %.6f), want %.6f", st.CostUSD, cost, want)
	}
}

// A job with a token budget stops calling at the budget (overshoot within
// the calls in flight), shows paused with the reason, and finishes once the
// budget is raised, with no item failed because of it.
func TestBudgetPausesAndResumes(t *testing.T) {
	t.Parallel()
	const concurrency = 4
	f := newFleet(t, "--seed", "43", "--latency", "30ms")
	file, _, _ := writeItems(t, 60, func(i int) (string, string) { return fmt.Sprint(i), fmt.Sprintf("budgeted item %d", i) })
	if _, r := f.submit(t, file, "--job", "bud", "--budget-tokens", "400"); r.code != 0 {
		t.Fatal("run")
	}
	f.worker(t, "--concurrency", fmt.Sprint(concurrency))
	var st status
	var reason string
	waitFor(t, 30*time.Second, "the job to pause", func() bool {
		r := f.producer(t, nil, "status", "--job", "bud", "--json")
		var s struct {
			State        string `json:"state"`
			PausedReason string `json:"paused_reason"`
		}
		json.Unmarshal([]byte(r.stdout), &s)
		reason = s.PausedReason
		return s.State == "paused"
	})
	if !strings.Contains(reason, "token budget") {
		t.Errorf("paused reason %q, want it to name the token budget", reason)
	}
	// Calls in flight finish; then nothing more is called.
	time.Sleep(time.Second)
	calls := f.stats(t).Calls
	time.Sleep(2 * time.Second)
	if after := f.stats(t).Calls; after != calls {
		t.Errorf("%d calls made while the job was paused", after-calls)
	}
	st = f.status(t, "bud")
	perItem := 22 // prompt + reply tokens of one item, by the simulator's count
	used := f.stats(t).TokensIn + f.stats(t).TokensOut
	if used > 400+concurrency*perItem {
		t.Errorf("%d tokens used, over the 400 budget by more than the %d calls in flight", used, concurrency)
	}
	t.Logf("paused at %d tokens for a 400-token budget (overshoot %d, bound %d)", used, used-400, concurrency*perItem)
	if st.Failed != 0 || st.Done == 60 {
		t.Fatalf("status %+v: want some items left pending, none failed", st)
	}
	if r := f.producer(t, nil, "budget", "--job", "bud", "--budget-tokens", "0"); r.code != 0 || !strings.Contains(r.stdout, "resumed") {
		t.Fatalf("budget: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	if r := runCmdTimeout(t, f.env, time.Minute, "status", "--job", "bud", "--wait", "--interval", "200ms"); r.code != 0 {
		t.Fatalf("after raising the budget: status --wait exit %d: %s", r.code, r.stdout)
	}
	if st := f.status(t, "bud"); st.Done != 60 {
		t.Errorf("status %+v, want all 60 done", st)
	}
}
