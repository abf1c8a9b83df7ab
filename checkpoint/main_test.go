package checkpoint_test

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/llmfleet/llmfleet/checkpoint"
	"github.com/llmfleet/llmfleet/internal/testredis"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeClock is the injected clock: tests move it instead of sleeping.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	return c.now
}

// t0 has whole milliseconds, the precision the checkpoint keeps.
var t0 = time.Date(2030, 3, 4, 5, 6, 7, 8_000_000, time.UTC)

type testBundle struct {
	ctx   context.Context
	rdb   *redis.Client
	store *checkpoint.Store
	clock *fakeClock
}

// setup starts a fresh redis-server, so every (parallel) test is isolated.
func setup(t *testing.T) *testBundle {
	t.Helper()
	srv := testredis.Start(t)
	rdb := srv.Client(t)
	clock := &fakeClock{now: t0}
	return &testBundle{
		ctx:   t.Context(),
		rdb:   rdb,
		store: checkpoint.New(rdb).WithClock(clock.Now),
		clock: clock,
	}
}

func testPolicy() checkpoint.Policy {
	return checkpoint.Policy{
		Model:       "gpt-test",
		System:      "be brief",
		Template:    "{{.text}}",
		JSONOutput:  true,
		Queue:       "default",
		MaxAttempts: 3,
		BackoffMin:  time.Second,
		BackoffMax:  time.Minute,
		Timeout:     30 * time.Second,
		Retention:   time.Hour,
	}
}

// open creates the job and fails the test when it already existed.
func (b *testBundle) open(t *testing.T, name string, p checkpoint.Policy) checkpoint.Job {
	t.Helper()
	j, created, err := b.store.Open(b.ctx, name, p)
	if err != nil {
		t.Fatalf("Open(%q): %v", name, err)
	}
	if !created {
		t.Fatalf("Open(%q): created = false for a new job", name)
	}
	return j
}

func canonical(id string) []byte {
	return []byte(fmt.Sprintf(`{"id":%q,"prompt":"say hello to %s"}`, id, id))
}

func entries(ids ...string) []checkpoint.Entry {
	out := make([]checkpoint.Entry, len(ids))
	for i, id := range ids {
		out[i] = checkpoint.Entry{ID: id, Canonical: canonical(id)}
	}
	return out
}

func itemIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("item-%05d", i)
	}
	return ids
}

// record records the items and requires every one to be new.
func (b *testBundle) record(t *testing.T, job string, ids ...string) {
	t.Helper()
	got, err := b.store.Record(b.ctx, job, entries(ids...))
	if err != nil {
		t.Fatalf("Record: %v", err)
	}
	if len(got) != len(ids) {
		t.Fatalf("Record returned %d outcomes for %d entries", len(got), len(ids))
	}
	for i, r := range got {
		if r != checkpoint.RecordedNew {
			t.Fatalf("Record(%q) = %q, want %q", ids[i], r, checkpoint.RecordedNew)
		}
	}
}

func (b *testBundle) claim(t *testing.T, job, id, token string) checkpoint.Claimed {
	t.Helper()
	c, err := b.store.Claim(b.ctx, job, id, token)
	if err != nil {
		t.Fatalf("Claim(%q, %q): %v", id, token, err)
	}
	if c.Verdict != "ok" {
		t.Fatalf("Claim(%q, %q) verdict = %q, want ok", id, token, c.Verdict)
	}
	return c
}

func (b *testBundle) commit(t *testing.T, job, token string, r checkpoint.Result) checkpoint.Committed {
	t.Helper()
	out, err := b.store.Commit(b.ctx, job, token, r)
	if err != nil {
		t.Fatalf("Commit(%q, %q): %v", r.ID, token, err)
	}
	return out
}

// finishItem claims and commits the item.
func (b *testBundle) finishItem(t *testing.T, job, id string) {
	t.Helper()
	b.claim(t, job, id, "tok-"+id)
	if out := b.commit(t, job, "tok-"+id, result(id, "out-"+id)); out != checkpoint.Committed1 {
		t.Fatalf("Commit(%q) = %q, want %q", id, out, checkpoint.Committed1)
	}
}

// failItem claims and fails the item.
func (b *testBundle) failItem(t *testing.T, job, id string, f checkpoint.Failure) {
	t.Helper()
	b.claim(t, job, id, "tok-"+id)
	ok, err := b.store.Fail(b.ctx, job, id, "tok-"+id, f)
	if err != nil || !ok {
		t.Fatalf("Fail(%q) = %v, %v, want true, nil", id, ok, err)
	}
}

func result(id, output string) checkpoint.Result {
	return checkpoint.Result{
		ID:         id,
		Output:     output,
		Model:      "gpt-test",
		Attempts:   1,
		TokensIn:   10,
		TokensOut:  20,
		FinishedAt: t0,
	}
}

func (b *testBundle) job(t *testing.T, name string) checkpoint.Job {
	t.Helper()
	j, err := b.store.Job(b.ctx, name)
	if err != nil {
		t.Fatalf("Job(%q): %v", name, err)
	}
	return j
}

func (b *testBundle) item(t *testing.T, job, id string) checkpoint.View {
	t.Helper()
	v, err := b.store.Item(b.ctx, job, id)
	if err != nil {
		t.Fatalf("Item(%q): %v", id, err)
	}
	return v
}

type counts struct{ total, done, failed, active, pending int64 }

func countsOf(j checkpoint.Job) counts {
	return counts{j.Total, j.Done, j.Failed, j.Active, j.Pending()}
}

// requireCounts checks the job's counters and that they agree with the items'
// statuses.
func (b *testBundle) requireCounts(t *testing.T, name string, want counts) checkpoint.Job {
	t.Helper()
	j := b.job(t, name)
	if got := countsOf(j); got != want {
		t.Fatalf("job %q counts = %+v, want %+v", name, got, want)
	}
	byStatus := b.statusCounts(t, name)
	fromItems := counts{
		total:   int64(byStatus[checkpoint.ItemPending] + byStatus[checkpoint.ItemActive] + byStatus[checkpoint.ItemDone] + byStatus[checkpoint.ItemFailed]),
		done:    int64(byStatus[checkpoint.ItemDone]),
		failed:  int64(byStatus[checkpoint.ItemFailed]),
		active:  int64(byStatus[checkpoint.ItemActive]),
		pending: int64(byStatus[checkpoint.ItemPending]),
	}
	if fromItems != want {
		t.Fatalf("job %q item statuses count %+v, want %+v", name, fromItems, want)
	}
	return j
}

func (b *testBundle) statusCounts(t *testing.T, name string) map[checkpoint.ItemStatus]int {
	t.Helper()
	out := map[checkpoint.ItemStatus]int{}
	err := b.store.Walk(b.ctx, name, checkpoint.Want{}, func(vs []checkpoint.View) error {
		for _, v := range vs {
			out[v.Status]++
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Walk(%q): %v", name, err)
	}
	return out
}

// jobKeys returns every key of the job found by SCAN.
func (b *testBundle) jobKeys(t *testing.T, name string) []string {
	t.Helper()
	var keys []string
	iter := b.rdb.Scan(b.ctx, 0, "llmfleet:{"+name+"}:*", 100).Iterator()
	for iter.Next(b.ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatalf("scan keys of %q: %v", name, err)
	}
	return keys
}

// ttls returns each key of the job with its TTL.
func (b *testBundle) ttls(t *testing.T, name string) map[string]time.Duration {
	t.Helper()
	out := map[string]time.Duration{}
	for _, k := range b.jobKeys(t, name) {
		d, err := b.rdb.TTL(b.ctx, k).Result()
		if err != nil {
			t.Fatalf("TTL %s: %v", k, err)
		}
		out[strings.TrimPrefix(k, "llmfleet:{"+name+"}:")] = d
	}
	return out
}

func samePolicy(a, b checkpoint.Policy) bool {
	if !a.Deadline.Equal(b.Deadline) {
		return false
	}
	a.Deadline, b.Deadline = time.Time{}, time.Time{}
	return reflect.DeepEqual(a, b)
}
