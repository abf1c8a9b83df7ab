package checkpoint

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Many concurrent requests, more than max per run: each gets its own answer,
// runs never exceed max, and they are shared.
func TestCoalescerAnswersEveryRequest(t *testing.T) {
	t.Parallel()
	var runs, biggest atomic.Int64
	c := &coalescer[int, int]{max: 8, linger: time.Millisecond, run: func(_ context.Context, reqs []int) ([]int, error) {
		runs.Add(1)
		if n := int64(len(reqs)); n > biggest.Load() {
			biggest.Store(n)
		}
		time.Sleep(time.Millisecond) // a round trip
		out := make([]int, len(reqs))
		for i, r := range reqs {
			out[i] = r * 2
		}
		return out, nil
	}}
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			got, err := c.do(context.Background(), i)
			if err != nil || got != 2*i {
				t.Errorf("do(%d) = %d, %v, want %d", i, got, err, 2*i)
			}
		})
	}
	wg.Wait()
	if b := biggest.Load(); b > 8 {
		t.Errorf("a run carried %d requests, want at most max 8", b)
	}
	if r := runs.Load(); r >= 200 {
		t.Errorf("%d runs for 200 concurrent requests, want them shared", r)
	}
}

// A run that fails or panics answers every request of its batch and hands
// the lead on: later requests of the job still run.
func TestCoalescerSurvivesFailedRuns(t *testing.T) {
	t.Parallel()
	boom := errors.New("redis down")
	var mode atomic.Int64 // 0 ok, 1 error, 2 panic
	c := &coalescer[int, int]{max: 4, run: func(_ context.Context, reqs []int) ([]int, error) {
		switch mode.Load() {
		case 1:
			return nil, boom
		case 2:
			panic("script decoding bug")
		}
		return append([]int(nil), reqs...), nil
	}}
	mode.Store(1)
	if _, err := c.do(context.Background(), 1); !errors.Is(err, boom) {
		t.Fatalf("do during a failing run = %v, want its error", err)
	}
	mode.Store(2)
	func() {
		defer func() {
			if recover() == nil {
				t.Error("the leader's panic was swallowed")
			}
		}()
		_, _ = c.do(context.Background(), 2)
	}()
	mode.Store(0)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if got, err := c.do(context.Background(), 3); err != nil || got != 3 {
			t.Errorf("do after a panicked run = %d, %v, want 3", got, err)
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a request after a panicked run never ran: the lead was not handed on")
	}
}
