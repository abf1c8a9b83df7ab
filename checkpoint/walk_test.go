package checkpoint_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/llmfleet/llmfleet/checkpoint"
)

// walkIDs returns the ids Walk yields, in order.
func walkIDs(t *testing.T, b *testBundle, job string, want checkpoint.Want) []string {
	t.Helper()
	var ids []string
	err := b.store.Walk(b.ctx, job, want, func(vs []checkpoint.View) error {
		for _, v := range vs {
			ids = append(ids, v.ID)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Walk: %v", err)
	}
	return ids
}

func TestWalk(t *testing.T) {
	t.Parallel()

	t.Run("InputOrderAcrossBatches", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", testPolicy())
		ids := itemIDs(2500)
		slices.Reverse(ids) // input order, not sorted order
		b.record(t, "j1", ids...)

		var got []string
		var sizes []int
		err := b.store.Walk(b.ctx, "j1", checkpoint.Want{Input: true}, func(vs []checkpoint.View) error {
			sizes = append(sizes, len(vs))
			for _, v := range vs {
				if v.Status != checkpoint.ItemPending || !bytes.Equal(v.Input, canonical(v.ID)) {
					t.Fatalf("view %q = status %q input %s", v.ID, v.Status, v.Input)
				}
				got = append(got, v.ID)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("Walk: %v", err)
		}
		if !slices.Equal(got, ids) {
			t.Fatalf("Walk yielded %d ids not in input order", len(got))
		}
		if len(sizes) < 3 || slices.Max(sizes) > 1000 {
			t.Fatalf("batch sizes = %v, want at least 3 batches of at most 1000", sizes)
		}
	})

	t.Run("ExactMultipleOfBatch", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", testPolicy())
		ids := itemIDs(2000)
		b.record(t, "j1", ids...)
		if got := walkIDs(t, b, "j1", checkpoint.Want{}); !slices.Equal(got, ids) {
			t.Fatalf("Walk yielded %d ids, want the 2000 in order", len(got))
		}
	})

	t.Run("StatusFilter", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", testPolicy())
		ids := itemIDs(1200)
		b.record(t, "j1", ids...)
		var wantFailed, wantDone []string
		for i, id := range ids {
			switch {
			case i%100 == 7:
				b.failItem(t, "j1", id, checkpoint.Failure{Class: "bad_request"})
				wantFailed = append(wantFailed, id)
			case i%100 == 42:
				b.finishItem(t, "j1", id)
				wantDone = append(wantDone, id)
			case i%100 == 99:
				b.claim(t, "j1", id, "t")
			}
		}

		if got := walkIDs(t, b, "j1", checkpoint.Want{Status: []checkpoint.ItemStatus{checkpoint.ItemFailed}}); !slices.Equal(got, wantFailed) {
			t.Fatalf("failed items = %v, want %v", got, wantFailed)
		}
		both := walkIDs(t, b, "j1", checkpoint.Want{Status: []checkpoint.ItemStatus{checkpoint.ItemDone, checkpoint.ItemFailed}})
		if len(both) != len(wantFailed)+len(wantDone) {
			t.Fatalf("done or failed items = %d, want %d", len(both), len(wantFailed)+len(wantDone))
		}
		if !slices.IsSorted(both) { // itemIDs are zero-padded: sorted is input order here
			t.Fatalf("done or failed items not in input order: %v", both)
		}
		pending := walkIDs(t, b, "j1", checkpoint.Want{Status: []checkpoint.ItemStatus{checkpoint.ItemPending}})
		b.requireCounts(t, "j1", counts{total: 1200, done: 12, failed: 12, active: 12, pending: int64(len(pending))})
		if len(pending) != 1200-36 {
			t.Fatalf("pending items = %d, want %d", len(pending), 1200-36)
		}
	})

	t.Run("LoadsWhatIsAsked", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", testPolicy())
		b.record(t, "j1", "done", "failed", "retrying", "fresh")

		b.claim(t, "j1", "done", "t1")
		if _, err := b.store.StartCall(b.ctx, "j1", "done", "t1", 3); err != nil {
			t.Fatal(err)
		}
		r := result("done", "the answer")
		b.commit(t, "j1", "t1", r)
		final := checkpoint.Failure{Class: "bad_request", Reason: "400", Attempts: 1, Status: 400, FirstFailed: t0, LastFailed: t0}
		b.failItem(t, "j1", "failed", final)
		b.claim(t, "j1", "retrying", "t3")
		for range 2 {
			if _, err := b.store.StartCall(b.ctx, "j1", "retrying", "t3", 3); err != nil {
				t.Fatal(err)
			}
		}
		last := checkpoint.Failure{Class: "rate_limited", Reason: "429", Attempts: 2, Status: 429, LastFailed: t0}
		if err := b.store.Release(b.ctx, "j1", "retrying", "t3", &last); err != nil {
			t.Fatal(err)
		}

		views := map[string]checkpoint.View{}
		err := b.store.Walk(b.ctx, "j1", checkpoint.Want{Input: true, Result: true, Failure: true, Calls: true}, func(vs []checkpoint.View) error {
			for _, v := range vs {
				views[v.ID] = v
			}
			return nil
		})
		if err != nil {
			t.Fatalf("Walk: %v", err)
		}
		if len(views) != 4 {
			t.Fatalf("Walk yielded %d views, want 4", len(views))
		}

		d := views["done"]
		var got checkpoint.Result
		if err := json.Unmarshal(d.Result, &got); err != nil {
			t.Fatalf("result %s: %v", d.Result, err)
		}
		if d.Status != checkpoint.ItemDone || got.Output != r.Output || got.ID != "done" || d.Calls != 1 || d.Failure != nil {
			t.Fatalf("done view = %+v (result %+v)", d, got)
		}
		if f := views["failed"]; f.Status != checkpoint.ItemFailed || f.Failure == nil || *f.Failure != final || f.Result != nil {
			t.Fatalf("failed view = %+v, failure %+v, want %+v", f, f.Failure, final)
		}
		if v := views["retrying"]; v.Status != checkpoint.ItemPending || v.LastErr == nil || *v.LastErr != last || v.Failure != nil || v.Calls != 2 {
			t.Fatalf("retrying view = %+v, last error %+v, want %+v", v, v.LastErr, last)
		}
		for id, v := range views {
			if !bytes.Equal(v.Input, canonical(id)) {
				t.Fatalf("input of %q = %s", id, v.Input)
			}
		}
		if v := views["fresh"]; v.Status != checkpoint.ItemPending || v.Result != nil || v.Failure != nil || v.LastErr != nil || v.Calls != 0 {
			t.Fatalf("fresh view = %+v", v)
		}

		// Nothing but id and status unless asked.
		err = b.store.Walk(b.ctx, "j1", checkpoint.Want{}, func(vs []checkpoint.View) error {
			for _, v := range vs {
				if v.Input != nil || v.Result != nil || v.Failure != nil || v.LastErr != nil || v.Calls != 0 {
					t.Fatalf("Walk(Want{}) loaded %+v", v)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("Walk: %v", err)
		}
	})

	t.Run("CallbackErrorStops", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", testPolicy())
		b.record(t, "j1", itemIDs(2500)...)
		stop := errors.New("stop")
		calls := 0
		err := b.store.Walk(b.ctx, "j1", checkpoint.Want{}, func([]checkpoint.View) error {
			calls++
			return stop
		})
		if !errors.Is(err, stop) || calls != 1 {
			t.Fatalf("Walk = %v after %d calls, want the callback's error after 1", err, calls)
		}
	})

	t.Run("ItemNotFound", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.open(t, "j1", testPolicy())
		b.record(t, "j1", "a")
		if _, err := b.store.Item(b.ctx, "j1", "zzz"); !errors.Is(err, checkpoint.ErrItemNotFound) {
			t.Fatalf("Item(unknown) = %v, want ErrItemNotFound", err)
		}
	})
}
