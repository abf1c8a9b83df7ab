package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/llmfleet/llmfleet/internal/testredis"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// BenchmarkAgentItems runs agent items that call two HTTP tools each (two
// model calls, two tool runs, four committed steps) and, on the same fleet
// in the same run, as many single-prompt items, so the figures compare side
// by side. It reports items/s for both, and the Redis memory an agent job
// keeps: bytes per committed step (the steps hash) and per item (every key
// of the job). The simulator and the tool server answer at once, so the
// figures are the fleet's own overhead.
func BenchmarkAgentItems(b *testing.B) {
	benchNeedRedis(b)
	const n = 2000
	f := newBenchFleet(b)
	ts := newToolServer(b)
	tools := filepath.Join(b.TempDir(), "tools.json")
	doc := fmt.Sprintf(`{"tools": [{"name": "check_disk", "url": "%[1]s/check_disk"}, {"name": "clean_logs", "url": "%[1]s/clean_logs"}]}`, ts.URL)
	if err := os.WriteFile(tools, []byte(doc), 0o644); err != nil {
		b.Fatal(err)
	}
	write := func(name, directive string) string {
		var sb strings.Builder
		for i := range n {
			fmt.Fprintf(&sb, `{"id": "%s%05d", "prompt": "host %d of %s %s"}`+"\n", name, i, i, name, directive)
		}
		path := filepath.Join(b.TempDir(), name+".jsonl")
		if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
			b.Fatal(err)
		}
		return path
	}
	agents, prompts := write("agents", "#tools:check_disk,clean_logs"), write("prompts", "")
	f.worker(b)
	b.ResetTimer()
	var agentJob, promptJob string
	for i := range b.N {
		// The single-prompt job first, then the agent job, each timed
		// from its enqueue to its last result.
		agentJob, promptJob = fmt.Sprintf("agents-%d", i), fmt.Sprintf("prompts-%d", i)
		t0 := time.Now()
		if r := benchRun(b, f.env, "producer", "run", "--job", promptJob, prompts); r.code != 0 {
			b.Fatalf("run prompts: exit %d: %s", r.code, r.stderr)
		}
		f.waitDone(b, promptJob, n, 100*time.Millisecond, 5*time.Minute)
		prompt := float64(n) / time.Since(t0).Seconds()
		t1 := time.Now()
		if r := benchRun(b, f.env, "producer", "run", "--job", agentJob, "--tools", tools, agents); r.code != 0 {
			b.Fatalf("run agents: exit %d: %s", r.code, r.stderr)
		}
		f.waitDone(b, agentJob, n, 100*time.Millisecond, 5*time.Minute)
		agent := float64(n) / time.Since(t1).Seconds()
		b.ReportMetric(agent, "agent_items/s")
		b.ReportMetric(prompt, "prompt_items/s")
		b.ReportMetric(agent/prompt, "agent/prompt")
	}
	b.StopTimer()
	stepBytes, jobBytes := jobMemory(b, f.redis.Addr, agentJob)
	b.ReportMetric(float64(stepBytes)/float64(4*n), "redis_bytes/step")
	b.ReportMetric(float64(jobBytes)/float64(n), "redis_bytes/agent_item")
	_, promptBytes := jobMemory(b, f.redis.Addr, promptJob)
	b.ReportMetric(float64(promptBytes)/float64(n), "redis_bytes/prompt_item")
	if got := ts.count(); got != 2*n*b.N {
		b.Fatalf("tool server saw %d runs, want %d", got, 2*n*b.N)
	}
}

// jobMemory is MEMORY USAGE of a job's steps hash and of all its keys.
func jobMemory(b *testing.B, addr, job string) (steps, total int64) {
	b.Helper()
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	iter := rdb.Scan(ctx, 0, "*{"+job+"}*", 100).Iterator()
	for iter.Next(ctx) {
		n, err := rdb.MemoryUsage(ctx, iter.Val(), 0).Result()
		if err != nil {
			b.Fatal(err)
		}
		total += n
		if strings.HasSuffix(iter.Val(), ":steps") {
			steps = n
		}
	}
	if err := iter.Err(); err != nil {
		b.Fatal(err)
	}
	return steps, total
}

// BenchmarkParkedItems parks 2,000 agent items on a tool that needs
// approval and reports what a parked item keeps in Redis: the job's keys
// (input, status, its model step, its request) and asynq's task, which
// waits in the retry set. Items done as single prompts on the same fleet
// are the comparison.
func BenchmarkParkedItems(b *testing.B) {
	benchNeedRedis(b)
	const n = 2000
	f := newBenchFleet(b)
	ts := newToolServer(b)
	tools := filepath.Join(b.TempDir(), "tools.json")
	doc := fmt.Sprintf(`{"tools": [{"name": "clean_logs", "url": "%s/clean_logs", "approval": "always"}]}`, ts.URL)
	if err := os.WriteFile(tools, []byte(doc), 0o644); err != nil {
		b.Fatal(err)
	}
	var sb strings.Builder
	for i := range n {
		fmt.Fprintf(&sb, `{"id": "p%05d", "prompt": "clean host %d #tools:clean_logs"}`+"\n", i, i)
	}
	items := filepath.Join(b.TempDir(), "items.jsonl")
	if err := os.WriteFile(items, []byte(sb.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	f.worker(b)
	b.ResetTimer()
	var job string
	for i := range b.N {
		job = fmt.Sprintf("parked-%d", i)
		t0 := time.Now()
		if r := benchRun(b, f.env, "producer", "run", "--job", job, "--tools", tools, items); r.code != 0 {
			b.Fatalf("run: exit %d: %s", r.code, r.stderr)
		}
		deadline := time.Now().Add(5 * time.Minute)
		for {
			r := benchRun(b, f.env, "producer", "status", "--job", job, "--json")
			var st struct {
				AwaitingInput int `json:"awaiting_input"`
			}
			if r.code != 0 || json.Unmarshal([]byte(r.stdout), &st) != nil {
				b.Fatalf("status: exit %d: %s", r.code, r.stderr)
			}
			if st.AwaitingInput == n {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d items parked after 5m", st.AwaitingInput, n)
			}
			time.Sleep(100 * time.Millisecond)
		}
		b.ReportMetric(float64(n)/time.Since(t0).Seconds(), "parked_items/s")
	}
	b.StopTimer()
	_, total := jobMemory(b, f.redis.Addr, job)
	b.ReportMetric(float64(total)/float64(n), "redis_bytes/parked_item")
	b.ReportMetric(float64(keysMemory(b, f.redis.Addr, "asynq:{default}:t:*"))/float64(n), "asynq_bytes/parked_task")
	if ts.count() != 0 {
		b.Fatalf("the tool ran %d times before any approval", ts.count())
	}
}

// keysMemory is MEMORY USAGE summed over the keys matching pattern.
func keysMemory(b *testing.B, addr, pattern string) int64 {
	b.Helper()
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	var total int64
	iter := rdb.Scan(ctx, 0, pattern, 1000).Iterator()
	for iter.Next(ctx) {
		n, err := rdb.MemoryUsage(ctx, iter.Val(), 0).Result()
		if err != nil {
			b.Fatal(err)
		}
		total += n
	}
	if err := iter.Err(); err != nil {
		b.Fatal(err)
	}
	return total
}

// BenchmarkEmbeddingsPacked runs 100 embedding items twice under the same
// limit of 300 requests per minute (the simulator enforces it, the worker
// is told it): packed (--pack 64) and one input per request (--pack 1),
// and reports inputs/s for both. Packing is what lets an RPM-bound
// embedding job go faster than the request limit.
func BenchmarkEmbeddingsPacked(b *testing.B) {
	benchNeedRedis(b)
	const n, rpm = 100, 300
	rs := testredis.Start(b)
	addr := "127.0.0.1:" + strconv.Itoa(freePort(b))
	benchStart(b, os.Environ(), "mockllm", "--addr", addr, "--rpm", strconv.Itoa(rpm))
	waitHTTP(b, "http://"+addr+"/v1/models")
	f := &benchFleet{env: append(cleanEnv(), "REDIS_URL="+rs.URL, "OPENAI_BASE_URL=http://"+addr+"/v1"), redis: rs}
	benchStart(b, f.env, "worker", "--concurrency", "128", "--rpm", strconv.Itoa(rpm), "--check-interval", "1s")
	var sb strings.Builder
	for i := range n {
		fmt.Fprintf(&sb, `{"id": "i%04d", "input": "document number %d"}`+"\n", i, i)
	}
	items := filepath.Join(b.TempDir(), "items.jsonl")
	if err := os.WriteFile(items, []byte(sb.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		for _, pack := range []int{64, 1} {
			job := fmt.Sprintf("emb-%d-%d", pack, i)
			t0 := time.Now()
			if r := benchRun(b, f.env, "producer", "run", "--job", job, "--endpoint", "embeddings", "--pack", strconv.Itoa(pack), items); r.code != 0 {
				b.Fatalf("run: exit %d: %s", r.code, r.stderr)
			}
			f.waitDone(b, job, n, 100*time.Millisecond, 5*time.Minute)
			name := "packed_inputs/s"
			if pack == 1 {
				name = "one_per_request_inputs/s"
			}
			b.ReportMetric(float64(n)/time.Since(t0).Seconds(), name)
		}
	}
}

// BenchmarkBatchItemMemory reports the Redis bytes a done item of an
// OpenAI batch file keeps (its result and the provider's response body,
// for export --format openai-batch) against a plain JSONL item with the
// same prompt, 2,000 of each on one fleet.
func BenchmarkBatchItemMemory(b *testing.B) {
	benchNeedRedis(b)
	const n = 2000
	f := newBenchFleet(b)
	f.worker(b)
	var batch, plain strings.Builder
	for i := range n {
		fmt.Fprintf(&batch, `{"custom_id": "r%05d", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "summarise review %d"}]}}`+"\n", i, i)
		fmt.Fprintf(&plain, `{"id": "r%05d", "prompt": "summarise review %d"}`+"\n", i, i)
	}
	dir := b.TempDir()
	os.WriteFile(filepath.Join(dir, "batch.jsonl"), []byte(batch.String()), 0o644)
	os.WriteFile(filepath.Join(dir, "plain.jsonl"), []byte(plain.String()), 0o644)
	b.ResetTimer()
	var bj, pj string
	for i := range b.N {
		bj, pj = fmt.Sprintf("batch-%d", i), fmt.Sprintf("plain-%d", i)
		for job, file := range map[string]string{bj: "batch.jsonl", pj: "plain.jsonl"} {
			if r := benchRun(b, f.env, "producer", "run", "--job", job, filepath.Join(dir, file)); r.code != 0 {
				b.Fatalf("run: exit %d: %s", r.code, r.stderr)
			}
			f.waitDone(b, job, n, 100*time.Millisecond, 5*time.Minute)
		}
	}
	b.StopTimer()
	_, batchBytes := jobMemory(b, f.redis.Addr, bj)
	_, plainBytes := jobMemory(b, f.redis.Addr, pj)
	b.ReportMetric(float64(batchBytes)/n, "redis_bytes/batch_item")
	b.ReportMetric(float64(plainBytes)/n, "redis_bytes/plain_item")
}
