//go:build unix

package e2e

// Benchmarks of the real binaries. They print measured figures with
// b.ReportMetric and assert nothing beyond "the run completed"; `make bench`
// runs each once (-benchtime 1x). The built-in ns/op of each line is the wall
// time of the whole sub-benchmark (Redis and simulator start-up included), and
// B/op, allocs/op are those of the test process only, not of the binaries.
//
// The harness helpers take *testing.T; the few needed here are restated for
// testing.TB with a bench prefix.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/llmfleet/llmfleet/internal/testredis"
)

const (
	benchItems       = 3000 // items (tasks) of the throughput benchmarks
	benchConcurrency = 32   // worker --concurrency and asynq.Config.Concurrency
	benchBigItems    = 100_000
)

// BenchmarkPipelineThroughput measures the whole pipeline: `producer run`
// enqueues benchItems items, then worker processes (--concurrency 32) call
// the simulator (no latency, no faults) until `status --json` shows every
// item done. items/s counts from the first worker start to that status
// (polled every 100 ms). In the same sub-benchmark, bare asynq no-op tasks
// are measured the same way on a fresh redis-server (see
// BenchmarkBareAsynqNoop) with as many servers as workers: bare_tasks/s, and
// pipeline/bare is the ratio items/s ÷ bare_tasks/s of this one run.
func BenchmarkPipelineThroughput(b *testing.B) {
	benchNeedRedis(b)
	for _, workers := range []int{1, 2} {
		b.Run("workers="+strconv.Itoa(workers), func(b *testing.B) {
			bare := benchBareAsynq(b, workers, benchItems) // its servers are stopped on return
			p := benchPipeline(b, workers, benchItems)
			b.ReportMetric(p.perSec, "items/s")
			b.ReportMetric(p.enqueue.Seconds(), "producer_run_s")
			b.ReportMetric(bare.perSec, "bare_tasks/s")
			b.ReportMetric(p.perSec/bare.perSec, "pipeline/bare")
		})
	}
}

// BenchmarkBareAsynqNoop is the ceiling the pipeline is compared with:
// benchItems no-op tasks enqueued with asynq's client from 16 goroutines,
// then processed by in-process asynq.Servers (Concurrency 32 each, 1 s check
// intervals as the worker sets them) whose handler only counts. tasks/s is
// from the first server start to the last task handled.
func BenchmarkBareAsynqNoop(b *testing.B) {
	benchNeedRedis(b)
	for _, servers := range []int{1, 2} {
		b.Run("servers="+strconv.Itoa(servers), func(b *testing.B) {
			r := benchBareAsynq(b, servers, benchItems)
			b.ReportMetric(r.perSec, "tasks/s")
			b.ReportMetric(r.enqueue.Seconds(), "enqueue_s")
		})
	}
}

// BenchmarkProducerMemory runs `producer run` on a 100,000-item JSONL file
// (prompts of about 80 bytes) and, once two workers (--concurrency 32,
// simulator without latency) have done every item, `producer export --out`.
// It reports the peak RSS (getrusage maxrss) and wall time of each of the
// two producer processes; work_s is how long the workers took (not a
// producer figure, shown for context).
func BenchmarkProducerMemory(b *testing.B) {
	benchNeedRedis(b)
	f := newBenchFleet(b)
	dir := b.TempDir()
	file := filepath.Join(dir, "big.jsonl")
	benchWriteBig(b, file, benchBigItems)

	run := benchRun(b, f.env, "producer", "run", "--job", "big", file)
	if run.code != 0 {
		b.Fatalf("producer run: exit %d: %s", run.code, run.stderr)
	}

	start := time.Now()
	for range 2 {
		f.worker(b)
	}
	f.waitDone(b, "big", benchBigItems, 500*time.Millisecond, 3*time.Minute)
	work := time.Since(start)

	out := filepath.Join(dir, "big.results.jsonl")
	exp := benchRun(b, f.env, "producer", "export", "--job", "big", "--out", out)
	if exp.code != 0 {
		b.Fatalf("producer export: exit %d: %s", exp.code, exp.stderr)
	}
	if lines := benchCountLines(b, out); lines != benchBigItems {
		b.Fatalf("export wrote %d lines, want %d", lines, benchBigItems)
	}

	b.ReportMetric(run.maxRSSMiB, "producer_run_MiB")
	b.ReportMetric(run.wall.Seconds(), "run_s")
	b.ReportMetric(exp.maxRSSMiB, "export_MiB")
	b.ReportMetric(exp.wall.Seconds(), "export_s")
	b.ReportMetric(work.Seconds(), "work_s")
}

// throughput is one measured run.
type throughput struct {
	perSec  float64       // items or tasks per second, processing only
	enqueue time.Duration // time to enqueue them beforehand
}

func benchPipeline(b *testing.B, workers, n int) throughput {
	b.Helper()
	f := newBenchFleet(b)
	path := filepath.Join(b.TempDir(), "items.jsonl")
	benchWriteItems(b, path, n, func(i int) (string, string) {
		return fmt.Sprintf("t%05d", i), fmt.Sprintf("throughput item %d: answer briefly", i)
	})
	run := benchRun(b, f.env, "producer", "run", "--job", "tp", path)
	if run.code != 0 {
		b.Fatalf("producer run: exit %d: %s", run.code, run.stderr)
	}
	start := time.Now()
	for range workers {
		f.worker(b)
	}
	f.waitDone(b, "tp", n, 100*time.Millisecond, time.Minute)
	return throughput{perSec: float64(n) / time.Since(start).Seconds(), enqueue: run.wall}
}

func benchBareAsynq(b *testing.B, servers, n int) throughput {
	b.Helper()
	rs := testredis.Start(b)
	newClient := func() *redis.Client {
		c := redis.NewClient(&redis.Options{Addr: rs.Addr})
		b.Cleanup(func() { _ = c.Close() })
		return c
	}

	client := asynq.NewClientFromRedisClient(newClient())
	t0 := time.Now()
	benchEnqueue(b, n, func(int) error {
		_, err := client.Enqueue(asynq.NewTask("bench:noop", nil))
		return err
	})
	enqueue := time.Since(t0)

	var handled atomic.Int64
	done := make(chan struct{})
	mux := asynq.NewServeMux()
	mux.HandleFunc("bench:noop", func(context.Context, *asynq.Task) error {
		if handled.Add(1) == int64(n) {
			close(done)
		}
		return nil
	})
	var srvs []*asynq.Server
	defer func() {
		for _, srv := range srvs {
			srv.Shutdown()
		}
	}()
	start := time.Now()
	for range servers {
		srv := asynq.NewServerFromRedisClient(newClient(), asynq.Config{
			Concurrency:              benchConcurrency,
			DelayedTaskCheckInterval: time.Second,
			TaskCheckInterval:        time.Second,
			LogLevel:                 asynq.WarnLevel,
		})
		if err := srv.Start(mux); err != nil {
			b.Fatalf("asynq server: %v", err)
		}
		srvs = append(srvs, srv)
	}
	select {
	case <-done:
	case <-time.After(time.Minute):
		b.Fatalf("bare asynq: %d of %d tasks handled after a minute", handled.Load(), n)
	}
	elapsed := time.Since(start)
	return throughput{perSec: float64(n) / elapsed.Seconds(), enqueue: enqueue}
}

// benchNeedRedis skips when redis-server is not installed (`make bench`
// installs it).
func benchNeedRedis(b *testing.B) {
	b.Helper()
	if testredis.Binary() == "" {
		b.Skip("redis-server not installed: run `make bench`, which installs it")
	}
}

// benchFleet is a redis-server, the simulator (no latency, no faults) and
// the environment that points the binaries at them.
type benchFleet struct {
	env   []string
	redis *testredis.Server
	sim   string // the simulator's base URL, .../v1
}

func newBenchFleet(tb testing.TB) *benchFleet {
	tb.Helper()
	rs := testredis.Start(tb)
	addr := "127.0.0.1:" + strconv.Itoa(freePort(tb))
	benchStart(tb, os.Environ(), "mockllm", "--addr", addr)
	waitHTTP(tb, "http://"+addr+"/v1/models")
	env := []string{"REDIS_URL=" + rs.URL, "OPENAI_BASE_URL=http://" + addr + "/v1"}
	for _, kv := range os.Environ() {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case "REDIS_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL":
		default:
			env = append(env, kv)
		}
	}
	return &benchFleet{env: env, redis: rs, sim: "http://" + addr + "/v1"}
}

func (f *benchFleet) worker(tb testing.TB) {
	tb.Helper()
	benchStart(tb, f.env, "worker", "--concurrency", strconv.Itoa(benchConcurrency),
		"--check-interval", "1s", "--shutdown-timeout", "5s")
}

// waitDone polls `producer status --json` until n items are done.
func (f *benchFleet) waitDone(tb testing.TB, job string, n int, every, within time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(within)
	for {
		r := benchRun(tb, f.env, "producer", "status", "--job", job, "--json")
		var st struct {
			Done   int `json:"done"`
			Failed int `json:"failed"`
		}
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &st) != nil {
			tb.Fatalf("status: exit %d: %s %s", r.code, r.stdout, r.stderr)
		}
		if st.Failed > 0 {
			tb.Fatalf("job %s: %d items failed (no fault was injected): %s", job, st.Failed, r.stdout)
		}
		if st.Done >= n {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("job %s: %d of %d items done after %s", job, st.Done, n, within)
		}
		time.Sleep(every)
	}
}

// benchStart starts a binary in the background; it is killed when the
// benchmark ends. Only the tail of its output is kept (shown on failure).
func benchStart(tb testing.TB, env []string, name string, args ...string) {
	tb.Helper()
	benchStartStoppable(tb, env, name, args...)
}

// benchStartStoppable is benchStart with a stop function that kills the
// process and waits for it; it is also called when the benchmark ends.
func benchStartStoppable(tb testing.TB, env []string, name string, args ...string) (stop func()) {
	tb.Helper()
	out := &benchTail{}
	cmd := exec.Command(filepath.Join(binDir, name), args...)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, out, out
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", name, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			_ = cmd.Process.Kill()
			<-exited
			if tb.Failed() {
				tb.Logf("--- %s output (tail) ---\n%s", name, out.String())
			}
		})
	}
	tb.Cleanup(stop)
	return stop
}

// benchTail keeps the last 16 KiB written to it.
type benchTail struct {
	mu sync.Mutex
	b  []byte
}

func (t *benchTail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - 16<<10; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *benchTail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// benchResult is a binary run to completion, with its peak RSS.
type benchResult struct {
	code           int
	stdout, stderr string
	wall           time.Duration
	maxRSSMiB      float64
}

func benchRun(tb testing.TB, env []string, name string, args ...string) benchResult {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, name), args...)
	cmd.Env = env
	out, errb := &benchTail{}, &benchTail{}
	cmd.Stdout, cmd.Stderr = out, errb
	start := time.Now()
	err := cmd.Run()
	r := benchResult{wall: time.Since(start), stdout: out.String(), stderr: errb.String()}
	if cmd.ProcessState == nil {
		tb.Fatalf("run %s %v: %v", name, args, err)
	}
	r.code = cmd.ProcessState.ExitCode()
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss := float64(ru.Maxrss) // KiB on Linux, bytes on Darwin
		if runtime.GOOS == "darwin" || runtime.GOOS == "ios" {
			rss /= 1024
		}
		r.maxRSSMiB = rss / 1024
	}
	return r
}

func benchWriteItems(tb testing.TB, path string, n int, gen func(i int) (id, prompt string)) {
	tb.Helper()
	fh, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	w := bufio.NewWriter(fh)
	for i := range n {
		id, prompt := gen(i)
		line, _ := json.Marshal(map[string]string{"id": id, "prompt": prompt})
		w.Write(line)
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	if err := fh.Close(); err != nil {
		tb.Fatal(err)
	}
}

// benchWriteBig writes n items with ids i000001.. and prompts of about 80
// bytes.
func benchWriteBig(tb testing.TB, path string, n int) {
	tb.Helper()
	benchWriteItems(tb, path, n, func(i int) (string, string) {
		return fmt.Sprintf("i%06d", i+1),
			fmt.Sprintf("Item %06d: write one short, friendly sentence about the open sea on a calm day.", i+1)
	})
}

func benchCountLines(tb testing.TB, path string) int {
	tb.Helper()
	fh, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	n := 0
	for sc.Scan() {
		n++
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return n
}
