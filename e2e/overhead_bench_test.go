//go:build unix

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	openai "github.com/sashabaranov/go-openai"

	"github.com/llmfleet/llmfleet/checkpoint"
	"github.com/llmfleet/llmfleet/internal/testredis"
)

const (
	overheadItems       = 20_000
	overheadConcurrency = 50
	overheadRounds      = 3
)

// BenchmarkPerItemOverhead compares, on one redis-server and one simulator
// (no latency, no faults) and in one run, three ways to push overheadItems
// prompts through:
//
//   - ours: `producer run`, then one `worker --concurrency 50` process,
//     until the checkpoint says every item is done;
//   - naive: what a user writes from asynq's README: one task per prompt
//     (the prompt in the payload), an asynq.Server (Concurrency 50) whose
//     handler calls go-openai with its default client and HSETs the answer,
//     asynq's retries. naive_tuned is the same with a connection pool sized
//     for the concurrency (go-openai's default keeps 2 idle connections);
//   - bare: asynq no-op tasks, the ceiling.
//
// Each is measured overheadRounds times, interleaved, from the first server
// start to the last item handled (enqueueing is not timed). The reported
// figure is each one's median round; ours/naive is the ratio of medians, and
// every round's figures are logged. cmds/item is the Redis commands per item
// from INFO commandstats over the timed part (commands run inside Lua
// scripts included, as Redis counts them); scripts/item counts EVALSHA and
// EVAL alone, the scripted round trips.
func BenchmarkPerItemOverhead(b *testing.B) {
	benchNeedRedis(b)
	f := newBenchFleet(b)
	env, sim := f.env, f.sim
	rdb := f.redis.Client(b)
	path := filepath.Join(b.TempDir(), "items.jsonl")
	benchWriteItems(b, path, overheadItems, overheadPrompt)

	kinds := []string{"ours", "naive", "naive_tuned", "bare"}
	runs := map[string][]overheadRun{}
	for round := range overheadRounds {
		for _, k := range kinds {
			benchFlush(b, rdb)
			var r overheadRun
			switch k {
			case "ours":
				r = overheadOurs(b, env, rdb, path, fmt.Sprintf("ov%d", round))
			case "naive":
				r = overheadNaive(b, rdb, sim, false)
			case "naive_tuned":
				r = overheadNaive(b, rdb, sim, true)
			case "bare":
				r = overheadBare(b, rdb)
			}
			b.Logf("round %d %-11s %7.0f items/s  %5.1f cmds/item  %4.2f scripts/item", round+1, k, r.perSec, r.cmds, r.scripts)
			runs[k] = append(runs[k], r)
		}
	}
	med := map[string]overheadRun{}
	for _, k := range kinds {
		med[k] = medianRun(runs[k])
	}
	b.ReportMetric(med["ours"].perSec, "ours_items/s")
	b.ReportMetric(med["naive"].perSec, "naive_items/s")
	b.ReportMetric(med["naive_tuned"].perSec, "naive_tuned_items/s")
	b.ReportMetric(med["bare"].perSec, "bare_tasks/s")
	b.ReportMetric(med["ours"].perSec/med["naive"].perSec, "ours/naive")
	b.ReportMetric(med["ours"].perSec/med["naive_tuned"].perSec, "ours/naive_tuned")
	b.ReportMetric(med["ours"].cmds, "ours_cmds/item")
	b.ReportMetric(med["ours"].scripts, "ours_scripts/item")
	b.ReportMetric(med["naive"].cmds, "naive_cmds/item")
	b.ReportMetric(med["bare"].cmds, "bare_cmds/item")
	for i := range overheadRounds {
		b.Logf("round %d ours/naive %.2f, ours/naive_tuned %.2f", i+1,
			runs["ours"][i].perSec/runs["naive"][i].perSec, runs["ours"][i].perSec/runs["naive_tuned"][i].perSec)
	}
}

func overheadPrompt(i int) (string, string) {
	return fmt.Sprintf("o%06d", i), fmt.Sprintf("overhead item %d: answer in one short sentence", i)
}

// overheadRun is one measured round.
type overheadRun struct {
	perSec        float64
	cmds, scripts float64 // Redis commands and script runs per item
}

func medianRun(rs []overheadRun) overheadRun {
	s := slices.Clone(rs)
	slices.SortFunc(s, func(a, b overheadRun) int {
		switch {
		case a.perSec < b.perSec:
			return -1
		case a.perSec > b.perSec:
			return 1
		}
		return 0
	})
	return s[len(s)/2]
}

// benchFlush empties Redis between rounds, so every pipeline starts from the
// same state.
func benchFlush(tb testing.TB, rdb *redis.Client) {
	tb.Helper()
	if err := rdb.FlushAll(context.Background()).Err(); err != nil {
		tb.Fatalf("flushall: %v", err)
	}
}

// commandCounter reads INFO commandstats: reset at start, read at stop.
type commandCounter struct{ rdb *redis.Client }

func (c commandCounter) reset(tb testing.TB) {
	tb.Helper()
	if err := c.rdb.ConfigResetStat(context.Background()).Err(); err != nil {
		tb.Fatalf("config resetstat: %v", err)
	}
}

// read returns all commands and script runs (EVALSHA, EVAL) since reset.
func (c commandCounter) read(tb testing.TB) (all, scripts int64) {
	tb.Helper()
	for name, n := range testredis.CommandStats(tb, c.rdb) {
		all += n
		switch name {
		case "evalsha", "eval", "evalsha_ro", "eval_ro", "fcall":
			scripts += n
		}
	}
	return all, scripts
}

func (c commandCounter) perItem(tb testing.TB, n int) (float64, float64) {
	all, scripts := c.read(tb)
	return float64(all) / float64(n), float64(scripts) / float64(n)
}

func overheadOurs(b *testing.B, env []string, rdb *redis.Client, path, job string) overheadRun {
	b.Helper()
	run := benchRun(b, env, "producer", "run", "--job", job, path)
	if run.code != 0 {
		b.Fatalf("producer run: exit %d: %s", run.code, run.stderr)
	}
	store := checkpoint.New(rdb)
	cc := commandCounter{rdb}
	cc.reset(b)
	start := time.Now()
	stop := benchStartStoppable(b, env, "worker", "--concurrency", strconv.Itoa(overheadConcurrency),
		"--check-interval", "1s", "--shutdown-timeout", "5s")
	defer stop()
	deadline := start.Add(2 * time.Minute)
	for {
		j, err := store.Job(context.Background(), job)
		if err != nil {
			b.Fatalf("load job: %v", err)
		}
		if j.Failed > 0 {
			b.Fatalf("job %s: %d items failed (no fault was injected)", job, j.Failed)
		}
		if j.Done >= overheadItems {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("job %s: %d of %d items done after 2m", job, j.Done, overheadItems)
		}
		time.Sleep(20 * time.Millisecond)
	}
	elapsed := time.Since(start)
	cmds, scripts := cc.perItem(b, overheadItems)
	return overheadRun{perSec: overheadItems / elapsed.Seconds(), cmds: cmds, scripts: scripts}
}

// naivePayload is the naive pipeline's task payload: the prompt itself.
type naivePayload struct {
	ID     string `json:"id"`
	Prompt string `json:"prompt"`
}

func overheadNaive(b *testing.B, rdb *redis.Client, sim string, tuned bool) overheadRun {
	b.Helper()
	client := asynq.NewClientFromRedisClient(rdb)
	benchEnqueue(b, overheadItems, func(i int) error {
		id, prompt := overheadPrompt(i)
		p, _ := json.Marshal(naivePayload{ID: id, Prompt: prompt})
		_, err := client.Enqueue(asynq.NewTask("llm:naive", p), asynq.MaxRetry(5), asynq.Timeout(time.Minute))
		return err
	})

	cfg := openai.DefaultConfig("")
	cfg.BaseURL = sim
	if tuned {
		cfg.HTTPClient = &http.Client{Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        2 * overheadConcurrency,
			MaxIdleConnsPerHost: overheadConcurrency,
			IdleConnTimeout:     90 * time.Second,
		}}
	}
	oa := openai.NewClientWithConfig(cfg)
	var handled atomic.Int64
	done := make(chan struct{})
	mux := asynq.NewServeMux()
	mux.HandleFunc("llm:naive", func(ctx context.Context, t *asynq.Task) error {
		var p naivePayload
		if err := json.Unmarshal(t.Payload(), &p); err != nil {
			return fmt.Errorf("%v: %w", err, asynq.SkipRetry)
		}
		resp, err := oa.CreateChatCompletion(ctx, openai.ChatCompletionRequest{
			Model:    "gpt-4o-mini",
			Messages: []openai.ChatCompletionMessage{{Role: openai.ChatMessageRoleUser, Content: p.Prompt}},
		})
		if err != nil {
			return err
		}
		if len(resp.Choices) == 0 {
			return fmt.Errorf("no choices")
		}
		if err := rdb.HSet(ctx, "naive:results", p.ID, resp.Choices[0].Message.Content).Err(); err != nil {
			return err
		}
		if handled.Add(1) == overheadItems {
			close(done)
		}
		return nil
	})
	return overheadServe(b, rdb, mux, &handled, done, "naive")
}

func overheadBare(b *testing.B, rdb *redis.Client) overheadRun {
	b.Helper()
	client := asynq.NewClientFromRedisClient(rdb)
	benchEnqueue(b, overheadItems, func(int) error {
		_, err := client.Enqueue(asynq.NewTask("bench:noop", nil))
		return err
	})
	var handled atomic.Int64
	done := make(chan struct{})
	mux := asynq.NewServeMux()
	mux.HandleFunc("bench:noop", func(context.Context, *asynq.Task) error {
		if handled.Add(1) == overheadItems {
			close(done)
		}
		return nil
	})
	return overheadServe(b, rdb, mux, &handled, done, "bare")
}

// overheadServe runs one asynq.Server with mux until done closes, timing it
// and counting its Redis commands.
func overheadServe(b *testing.B, rdb *redis.Client, mux *asynq.ServeMux, handled *atomic.Int64, done chan struct{}, what string) overheadRun {
	b.Helper()
	cc := commandCounter{rdb}
	cc.reset(b)
	start := time.Now()
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency:              overheadConcurrency,
		DelayedTaskCheckInterval: time.Second,
		TaskCheckInterval:        time.Second,
		LogLevel:                 asynq.ErrorLevel,
	})
	if err := srv.Start(mux); err != nil {
		b.Fatalf("asynq server: %v", err)
	}
	defer srv.Shutdown()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		b.Fatalf("%s: %d of %d tasks handled after 2m", what, handled.Load(), overheadItems)
	}
	elapsed := time.Since(start)
	cmds, scripts := cc.perItem(b, overheadItems)
	return overheadRun{perSec: overheadItems / elapsed.Seconds(), cmds: cmds, scripts: scripts}
}

// benchEnqueue runs enqueue(i) for every item from 16 goroutines.
func benchEnqueue(b *testing.B, n int, enqueue func(i int) error) {
	b.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 16 {
		wg.Go(func() {
			for i := g; i < n; i += 16 {
				if err := enqueue(i); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatalf("enqueue: %v", err)
	}
}
