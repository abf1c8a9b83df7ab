package checkpoint_test

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/llmfleet/llmfleet/checkpoint"
)

// TestConcurrentClaimCommit races 20 workers over the same 200 items, each
// attempt with its own token, as re-dispatched tasks do.
func TestConcurrentClaimCommit(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const workers, items = 20, 200
	b.open(t, "j1", testPolicy())
	ids := itemIDs(items)
	b.record(t, "j1", ids...)

	var committed, duplicates, skipped, started, lost atomic.Int64
	errc := make(chan error, workers+1)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range items {
				id := ids[(i+w*7)%items] // different starting points: contention everywhere
				token := fmt.Sprintf("w%d-%s", w, id)
				c, err := b.store.Claim(b.ctx, "j1", id, token)
				if err != nil {
					errc <- err
					return
				}
				if c.Verdict != "ok" {
					if c.Verdict != "done" {
						errc <- fmt.Errorf("claim %s: verdict %q", id, c.Verdict)
						return
					}
					skipped.Add(1)
					continue
				}
				if _, err := b.store.StartCall(b.ctx, "j1", id, token, 1000); errors.Is(err, checkpoint.ErrClaimLost) {
					lost.Add(1) // re-claimed or committed by another worker: still commit
				} else if err != nil {
					errc <- err
					return
				} else {
					started.Add(1)
				}
				out, err := b.store.Commit(b.ctx, "j1", token, result(id, "by "+token))
				if err != nil {
					errc <- err
					return
				}
				switch out {
				case checkpoint.Committed1:
					committed.Add(1)
				case checkpoint.CommitDuplicate:
					duplicates.Add(1)
				default:
					errc <- fmt.Errorf("commit %s: %q", id, out)
					return
				}
			}
		}()
	}

	// Every snapshot read while the workers run is consistent.
	stop := make(chan struct{})
	var watcher sync.WaitGroup
	watcher.Add(1)
	go func() {
		defer watcher.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			j, err := b.store.Job(b.ctx, "j1")
			if err != nil {
				errc <- err
				return
			}
			if j.Total != items || j.Active < 0 || j.Active > workers || j.Pending() < 0 || j.Done > items || j.Failed != 0 {
				errc <- fmt.Errorf("inconsistent snapshot: %+v", countsOf(j))
				return
			}
		}
	}()

	wg.Wait()
	close(stop)
	watcher.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}

	if committed.Load() != items {
		t.Fatalf("commits that won = %d, want %d", committed.Load(), items)
	}
	if got := committed.Load() + duplicates.Load() + skipped.Load(); got != workers*items {
		t.Fatalf("outcomes = %d, want one per attempt (%d)", got, workers*items)
	}
	j := b.requireCounts(t, "j1", counts{total: items, done: items})
	if j.Total != j.Done+j.Failed+j.Active+j.Pending() {
		t.Fatalf("total %d != done+failed+active+pending %+v", j.Total, countsOf(j))
	}
	if j.Duplicates != duplicates.Load() {
		t.Fatalf("Duplicates = %d, want the %d extra commits", j.Duplicates, duplicates.Load())
	}
	if j.State != checkpoint.StateDone || j.FinishedAt.IsZero() {
		t.Fatalf("state %q FinishedAt %v, want done and finished", j.State, j.FinishedAt)
	}
	if j.ProviderCalls != started.Load() {
		t.Fatalf("ProviderCalls = %d, want the %d calls started", j.ProviderCalls, started.Load())
	}
	t.Logf("%d committed, %d duplicates, %d skipped as done, %d claims lost", committed.Load(), duplicates.Load(), skipped.Load(), lost.Load())
}
