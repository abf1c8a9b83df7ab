//go:build unix

package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llmfleet/llmfleet/internal/testredis"
)

// protectFleet is a redis-server and a simulator started with mockArgs.
type protectFleet struct {
	env     []string
	mockURL string
}

func newProtectFleet(tb testing.TB, mockArgs ...string) *protectFleet {
	tb.Helper()
	rs := testredis.Start(tb)
	addr := "127.0.0.1:" + strconv.Itoa(benchFreePort(tb))
	benchStart(tb, os.Environ(), "mockllm", append([]string{"--addr", addr}, mockArgs...)...)
	benchWaitHTTP(tb, "http://"+addr+"/v1/models")
	f := &protectFleet{mockURL: "http://" + addr}
	f.env = append(cleanEnv(), "REDIS_URL="+rs.URL, "OPENAI_BASE_URL="+f.mockURL+"/v1")
	return f
}

func (f *protectFleet) stats(tb testing.TB) simStats {
	tb.Helper()
	resp, err := http.Get(f.mockURL + "/admin/stats")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var s simStats
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		tb.Fatal(err)
	}
	return s
}

func (f *protectFleet) faults(tb testing.TB, spec string) {
	tb.Helper()
	req, _ := http.NewRequest(http.MethodPut, f.mockURL+"/admin/faults", strings.NewReader(spec))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	resp.Body.Close()
}

func (f *protectFleet) submit(tb testing.TB, job string, n int, args ...string) {
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
	f := newProtectFleet(b, "--rpm", strconv.Itoa(rpm), "--seed", "21")
	f.submit(b, "goodput", n, "--max-attempts", "20")
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
		f     *protectFleet
		calls int
	}
	runs := map[string]*run{"breaker": {}, "no_breaker": {}}
	for name, r := range runs {
		r.f = newProtectFleet(b, "--seed", "22", "--latency", "10ms")
		r.f.submit(b, "outage", 3000, "--max-attempts", "1000", "--backoff-max", "10s")
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
			r.f.faults(b, "503=1")
			before := r.f.stats(b).Calls
			time.Sleep(outage)
			r.calls = r.f.stats(b).Calls - before
			r.f.faults(b, "")
		})
	}
	wg.Wait()
	b.ReportMetric(float64(runs["breaker"].calls), "calls_with_breaker")
	b.ReportMetric(float64(runs["no_breaker"].calls), "calls_without_breaker")
}
