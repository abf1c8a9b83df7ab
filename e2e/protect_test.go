package e2e

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"
)

// breakerStatus is the breaker part of `status --json`.
type breakerStatus struct {
	Breaker     string `json:"breaker"`
	Transitions []struct {
		From   string    `json:"from"`
		To     string    `json:"to"`
		At     time.Time `json:"at"`
		Reason string    `json:"reason"`
	} `json:"breaker_transitions"`
	Failed int `json:"failed"`
	Done   int `json:"done"`
	Total  int `json:"total"`
}

func (f *fleet) breaker(t *testing.T, job string) breakerStatus {
	t.Helper()
	r := f.producer(t, nil, "status", "--job", job, "--json")
	if r.code != 0 {
		t.Fatalf("status: exit %d %s", r.code, r.stderr)
	}
	var b breakerStatus
	if err := json.Unmarshal([]byte(r.stdout), &b); err != nil {
		t.Fatal(err)
	}
	return b
}

// callTimes flattens the simulator's call arrival times, sorted.
func callTimes(t *testing.T, s simStats) []time.Time {
	t.Helper()
	var out []time.Time
	for _, ts := range s.TimesByContent {
		for _, v := range ts {
			at, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				t.Fatalf("time %q: %v", v, err)
			}
			out = append(out, at)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Before(out[j]) })
	return out
}

// An outage mid-job (every call 503) on a fleet of 3 workers: the breaker
// opens, calls after the open transition stay within the probes plus the
// calls already past their check, no item fails because of the outage, and
// the job completes once the provider recovers.
func TestOutageOpensBreakerAndJobCompletes(t *testing.T) {
	t.Parallel()
	const workers, concurrency = 3, 4
	f := newFleet(t, "--seed", "11", "--latency", "20ms")
	file, ids, prompts := writeItems(t, 300, func(i int) (string, string) {
		return fmt.Sprintf("o%03d", i), fmt.Sprintf("outage %d", i)
	})
	if _, r := f.submit(t, file, "--job", "out", "--max-attempts", "5", "--backoff-max", "2s"); r.code != 0 {
		t.Fatalf("run exit %d", r.code)
	}
	for range workers {
		f.worker(t, "--concurrency", fmt.Sprint(concurrency), "--breaker-cooldown", "2s")
	}
	waitFor(t, 60*time.Second, "60 items done", func() bool { return f.status(t, "out").Done >= 60 })
	f.setFaults(t, "503=1")
	var opened time.Time
	waitFor(t, 30*time.Second, "the breaker to open", func() bool {
		for _, tr := range f.breaker(t, "out").Transitions {
			if tr.From == "closed" && tr.To == "open" {
				opened = tr.At
				return true
			}
		}
		return false
	})
	// Let it cycle open → half-open → open a few times, then recover.
	time.Sleep(7 * time.Second)
	f.setFaults(t, "")
	outageEnd := time.Now()
	if r := runCmdTimeout(t, f.env, 2*time.Minute, "status", "--job", "out", "--wait", "--interval", "300ms"); r.code != 0 {
		t.Fatalf("status --wait: exit %d, want 0 (no item failed because of the outage): %s", r.code, r.stdout)
	}
	checkExport(t, f.export(t, "out"), ids, prompts)

	b := f.breaker(t, "out")
	probes := 0
	var reasons []string
	for _, tr := range b.Transitions {
		if tr.To == "half-open" && tr.At.After(opened) && tr.At.Before(outageEnd) {
			probes++ // MaxProbes is 1: one probe per half-open phase
		}
		reasons = append(reasons, tr.From+"→"+tr.To)
	}
	after := 0
	for _, at := range callTimes(t, f.stats(t)) {
		if at.After(opened) && at.Before(outageEnd) {
			after++
		}
	}
	if limit := probes + workers*concurrency; after > limit {
		t.Errorf("%d calls during the outage after the breaker opened, want at most %d (%d probes + %d in flight); transitions %v",
			after, limit, probes, workers*concurrency, reasons)
	}
	if b.Breaker != "closed" || b.Failed != 0 {
		t.Errorf("after recovery: breaker %s, %d failed; want closed and none failed", b.Breaker, b.Failed)
	}
	t.Logf("outage: %d calls after the open transition (%d probes); transitions %s", after, probes, strings.Join(reasons, " "))
}

// A worker that never saw a failure refuses to call the provider while
// another worker's failures hold the shared breaker open.
func TestBreakerIsSharedByTheFleet(t *testing.T) {
	t.Parallel()
	f := newFleet(t, "--seed", "12")
	bad, _, _ := writeItems(t, 12, func(i int) (string, string) { return fmt.Sprint(i), fmt.Sprintf("down %d #fail:503", i) })
	good, _, prompts := writeItems(t, 20, func(i int) (string, string) { return fmt.Sprint(i), fmt.Sprintf("healthy %d", i) })
	if _, r := f.submit(t, bad, "--job", "bad", "--queue", "a"); r.code != 0 {
		t.Fatal("run bad")
	}
	f.worker(t, "--queues", "a", "--breaker-cooldown", "1m")
	waitFor(t, 30*time.Second, "the breaker to open", func() bool { return f.breaker(t, "bad").Breaker == "open" })

	if _, r := f.submit(t, good, "--job", "good", "--queue", "b"); r.code != 0 {
		t.Fatal("run good")
	}
	f.worker(t, "--queues", "b", "--breaker-cooldown", "1m")
	waitFor(t, 20*time.Second, "the second worker to meet the breaker", func() bool { return f.breaker(t, "good").Breaker == "open" })
	time.Sleep(3 * time.Second)
	s := f.stats(t)
	for _, p := range prompts {
		if n := s.ByContent[key(p)]; n != 0 {
			t.Fatalf("the second worker called the provider for %q while the breaker was open", p)
		}
	}
	if st := f.status(t, "good"); st.Failed != 0 || st.Done != 0 || st.Pending+st.Active != 20 {
		t.Errorf("good job %+v: want every item still pending, none failed", st)
	}
}

// A 429 with Retry-After 5 s on one worker holds every worker back: no other
// call for that provider key reaches the simulator sooner than 5 s after the
// 429 was answered.
func TestRetryAfterHoldsTheWholeFleet(t *testing.T) {
	t.Parallel()
	const latency = 50 * time.Millisecond
	f := newFleet(t, "--seed", "13", "--latency", "50ms")
	file, _, _ := writeItems(t, 60, func(i int) (string, string) {
		if i == 10 {
			return "hold", "slow down #fail-first:1:429 #retry-after:5"
		}
		return fmt.Sprint(i), fmt.Sprintf("hold test %d", i)
	})
	if _, r := f.submit(t, file, "--job", "hold"); r.code != 0 {
		t.Fatal("run")
	}
	for range 3 {
		f.worker(t, "--concurrency", "2")
	}
	if r := runCmdTimeout(t, f.env, 2*time.Minute, "status", "--job", "hold", "--wait", "--interval", "300ms"); r.code != 0 {
		t.Fatalf("status --wait exit %d", r.code)
	}
	s := f.stats(t)
	first := s.TimesByContent[key("slow down #fail-first:1:429 #retry-after:5")]
	if len(first) != 2 {
		t.Fatalf("the 429 item was called %d times, want 2", len(first))
	}
	t429, _ := time.Parse(time.RFC3339Nano, first[0])
	answered := t429.Add(latency)
	// Calls already past their check when the 429 came back may still
	// arrive for a moment; none may start after that until the hold ends.
	const inFlight = 400 * time.Millisecond
	for _, at := range callTimes(t, s) {
		if at.After(answered.Add(inFlight)) && at.Before(answered.Add(5*time.Second)) {
			t.Errorf("a call arrived %s after the 429 was answered, inside its 5 s Retry-After", at.Sub(answered))
		}
	}
}

// The simulator enforces --rpm 120; a fleet of 3 workers configured with the
// same limit keeps its 429s at or under 2% of calls, and at least 10 times
// fewer than the same job with the limiter off. It needs more items than one
// minute's quota, so it runs for a little over a minute.
func TestRateLimiterKeepsTheFleetUnderRPM(t *testing.T) {
	if testing.Short() {
		t.Skip("runs past the simulator's 60 s window")
	}
	t.Parallel()
	const rpm, items = 120, 150
	run := func(t *testing.T, workerRPM int) simStats {
		f := newFleet(t, "--seed", "14", "--latency", "0ms-10ms", "--rpm", fmt.Sprint(rpm))
		file, _, _ := writeItems(t, items, func(i int) (string, string) { return fmt.Sprint(i), fmt.Sprintf("paced %d", i) })
		if _, r := f.submit(t, file, "--job", "rpm", "--max-attempts", "20", "--backoff-max", "5s"); r.code != 0 {
			t.Fatal("run")
		}
		for range 3 {
			f.worker(t, "--concurrency", "8", "--rpm", fmt.Sprint(workerRPM), "--breaker-429-items", "1000")
		}
		if r := runCmdTimeout(t, f.env, 4*time.Minute, "status", "--job", "rpm", "--wait", "--interval", "500ms"); r.code != 0 {
			t.Fatalf("status --wait exit %d", r.code)
		}
		return f.stats(t)
	}
	var with, without simStats
	t.Run("limited", func(t *testing.T) { t.Parallel(); with = run(t, rpm) })
	t.Run("unlimited", func(t *testing.T) { t.Parallel(); without = run(t, 0) })
	t.Cleanup(func() {
		w, wo := with.ByStatus["429"], without.ByStatus["429"]
		t.Logf("429s with the limiter: %d of %d calls; without: %d of %d calls", w, with.Calls, wo, without.Calls)
		if with.Calls == 0 || without.Calls == 0 {
			return
		}
		if float64(w) > 0.02*float64(with.Calls) {
			t.Errorf("with the limiter %d of %d calls got 429, over 2%%", w, with.Calls)
		}
		if wo < 10*w || wo == 0 {
			t.Errorf("429s: %d with the limiter, %d without: want at least 10 times fewer with it", w, wo)
		}
	})
}

// A job of large items with the simulator enforcing --tpm: the fleet's calls
// never go over it (the simulator answers any call that would with 429).
func TestRateLimiterKeepsTheFleetUnderTPM(t *testing.T) {
	if testing.Short() {
		t.Skip("runs past the simulator's 60 s window")
	}
	t.Parallel()
	const tpm = 20000
	f := newFleet(t, "--seed", "15", "--latency", "0ms-10ms", "--tpm", fmt.Sprint(tpm))
	filler := strings.Repeat("lorem ipsum dolor sit amet ", 180) // ~1000 tokens
	file, _, _ := writeItems(t, 26, func(i int) (string, string) { return fmt.Sprint(i), fmt.Sprintf("big %d %s", i, filler) })
	if _, r := f.submit(t, file, "--job", "tpm", "--max-attempts", "20"); r.code != 0 {
		t.Fatal("run")
	}
	for range 3 {
		f.worker(t, "--concurrency", "4", "--tpm", fmt.Sprint(tpm))
	}
	if r := runCmdTimeout(t, f.env, 4*time.Minute, "status", "--job", "tpm", "--wait", "--interval", "500ms"); r.code != 0 {
		t.Fatalf("status --wait exit %d", r.code)
	}
	s := f.stats(t)
	if s.TokensIn < tpm {
		t.Fatalf("the job used %d tokens, under one minute's %d: the test proves nothing", s.TokensIn+s.TokensOut, tpm)
	}
	if s.ByStatus["429"] != 0 {
		t.Errorf("%d calls would have taken the simulator over %d tokens per minute (429)", s.ByStatus["429"], tpm)
	}
	times := callTimes(t, s)
	t.Logf("%d tokens in %d calls over %s", s.TokensIn+s.TokensOut, s.Calls, times[len(times)-1].Sub(times[0]))
}
