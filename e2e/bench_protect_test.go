//go:build unix

package e2e

import (
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// submitN records n generated items as a job on the fleet.
func submitN(tb testing.TB, f *fleet, job string, n int, args ...string) {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), job+".jsonl")
	benchWriteItems(tb, path, n, func(i int) (string, string) { return fmt.Sprintf("%05d", i), fmt.Sprintf("%s item %d", job, i) })
	if r := benchRun(tb, f.env, "producer", append(append([]string{"run", "--job", job}, args...), path)...); r.code != 0 {
		tb.Fatalf("run: exit %d: %s", r.code, r.stderr)
	}
}

// BenchmarkGoodputUnderRPM: the simulator enforces --rpm 600 and three
// workers share the same limit. It reports the time to finish N items
// against the ideal N/600 minutes (goodput, 1.0 is perfect) and the 429s.
func BenchmarkGoodputUnderRPM(b *testing.B) {
	benchNeedRedis(b)
	const rpm, n = 600, 600
	f := newFleet(b, "--rpm", strconv.Itoa(rpm), "--seed", "21")
	submitN(b, f, "goodput", n, "--max-attempts", "20")
	start := time.Now()
	for range 3 {
		benchStart(b, f.env, "worker", "--concurrency", "16", "--rpm", strconv.Itoa(rpm), "--check-interval", "1s")
	}
	(&benchFleet{env: f.env}).waitDone(b, "goodput", n, 200*time.Millisecond, 4*time.Minute)
	took := time.Since(start)
	ideal := time.Duration(float64(n) / rpm * float64(time.Minute))
	s := f.stats(b)
	b.ReportMetric(took.Seconds(), "finish_s")
	b.ReportMetric(ideal.Seconds(), "ideal_s")
	b.ReportMetric(ideal.Seconds()/took.Seconds(), "goodput")
	b.ReportMetric(float64(s.ByStatus["429"]), "429s")
	b.ReportMetric(float64(s.Calls), "calls")
}

// BenchmarkOutageCalls: a 60 s outage (every call 503) on a fleet of three
// workers, with and without the breaker, run side by side; it reports the
// provider calls made during the outage.
func BenchmarkOutageCalls(b *testing.B) {
	benchNeedRedis(b)
	const outage = 60 * time.Second
	type run struct {
		f     *fleet
		calls int
	}
	runs := map[string]*run{"breaker": {}, "no_breaker": {}}
	for name, r := range runs {
		r.f = newFleet(b, "--seed", "22", "--latency", "10ms")
		// Enough items that neither fleet runs out of work before the
		// outage ends: a fleet that has finished makes no calls to count.
		submitN(b, r.f, "outage", 30000, "--max-attempts", "1000", "--backoff-max", "10s")
		args := []string{"--concurrency", "8", "--check-interval", "1s", "--breaker-cooldown", "10s"}
		if name == "no_breaker" {
			args = append(args, "--no-breaker")
		}
		for range 3 {
			benchStart(b, r.f.env, "worker", args...)
		}
	}
	// Let both fleets get going, then take the provider down for both.
	time.Sleep(2 * time.Second)
	var wg sync.WaitGroup
	for _, r := range runs {
		wg.Go(func() {
			r.f.setFaults(b, "503=1")
			before := r.f.stats(b).Calls
			time.Sleep(outage)
			r.calls = r.f.stats(b).Calls - before
			r.f.setFaults(b, "")
		})
	}
	wg.Wait()
	b.ReportMetric(float64(runs["breaker"].calls), "calls_with_breaker")
	b.ReportMetric(float64(runs["no_breaker"].calls), "calls_without_breaker")
}
