package ratelimit_test

import (
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llmfleet/llmfleet/checkpoint"
	"github.com/llmfleet/llmfleet/ratelimit"
)

func TestProviderKey(t *testing.T) {
	t.Parallel()

	base := ratelimit.ProviderKey(testURL, testAPIKey)
	if again := ratelimit.ProviderKey(testURL, testAPIKey); again != base {
		t.Fatalf("ProviderKey is not deterministic: %q then %q", base, again)
	}
	if got := ratelimit.ProviderKey(testURL+"/", testAPIKey); got != base {
		t.Errorf("trailing slash: ProviderKey = %q, want %q", got, base)
	}
	if !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(base) {
		t.Errorf("ProviderKey = %q, want 16 hex digits (a Redis hash tag)", base)
	}

	different := []struct{ name, url, key string }{
		{"other API key", testURL, "sk-test-OTHER"},
		{"no API key", testURL, ""},
		{"other base URL", "https://api.openai.com/v1", testAPIKey},
		{"other base URL, no key", "https://api.openai.com/v1", ""},
	}
	seen := map[string]string{base: "base"}
	for _, tt := range different {
		got := ratelimit.ProviderKey(tt.url, tt.key)
		if prev, dup := seen[got]; dup {
			t.Errorf("%s: ProviderKey = %q, the same as %s", tt.name, got, prev)
		}
		seen[got] = tt.name
	}

	for _, apiKey := range []string{testAPIKey, "abcdef0123456789", "0123", "sk"} {
		if got := ratelimit.ProviderKey(testURL, apiKey); strings.Contains(got, apiKey) {
			t.Errorf("ProviderKey(%q, %q) = %q contains the API key", testURL, apiKey, got)
		}
	}
}

func TestUnlimited(t *testing.T) {
	t.Parallel()
	b := setup(t)
	l := b.worker(t, ratelimit.Limits{})
	if l.CountsTokens() {
		t.Fatal("CountsTokens() = true without a TPM limit")
	}
	for range 50 {
		r := b.mustAllow(t, l, 1_000_000)
		if err := l.Settle(b.ctx, r, 5); err != nil {
			t.Fatalf("Settle: %v", err)
		}
	}
	if n := b.rdb.DBSize(b.ctx).Val(); n != 0 {
		t.Fatalf("an unlimited limiter wrote %d keys, want none", n)
	}
}

func TestRPM(t *testing.T) {
	t.Parallel()

	t.Run("BurstOfOne", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		l := b.worker(t, ratelimit.Limits{RPM: 120}) // burst 1, then one per 60/119 s
		if l.CountsTokens() {
			t.Fatal("CountsTokens() = true without a TPM limit")
		}
		b.mustAllow(t, l, 0)
		other := b.worker(t, ratelimit.Limits{RPM: 120})
		var last time.Duration
		for i := range 9 {
			x := l
			if i%2 == 1 {
				x = other // the limit is the fleet's
			}
			last = b.mustWait(t, x, 0, 300*time.Millisecond, 505*time.Millisecond)
		}
		// Honour the wait: then it is allowed.
		time.Sleep(last)
		b.mustAllow(t, other, 0)
	})

	t.Run("CancelGivesTheRequestBack", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		l := b.worker(t, ratelimit.Limits{RPM: 120})
		r := b.mustAllow(t, l, 0)
		if err := l.Cancel(b.ctx, r); err != nil {
			t.Fatalf("Cancel: %v", err)
		}
		b.mustAllow(t, l, 0)
	})

	t.Run("SteadyLoopStaysWithinLimit", func(t *testing.T) {
		t.Parallel()
		for _, workers := range []int{1, 3} {
			t.Run(map[int]string{1: "OneWorker", 3: "ThreeWorkers"}[workers], func(t *testing.T) {
				t.Parallel()
				b := setup(t)
				const rpm = 120
				const span = 3 * time.Second
				var mu sync.Mutex
				var admitted []time.Time
				limiters := make([]*ratelimit.Limiter, workers)
				for i := range limiters {
					limiters[i] = b.worker(t, ratelimit.Limits{RPM: rpm})
				}
				start := time.Now()
				deadline := start.Add(span)
				errs := make([]error, workers)
				var wg sync.WaitGroup
				for i, l := range limiters {
					wg.Go(func() {
						for {
							_, wait, err := l.Reserve(b.ctx, 0)
							if err != nil {
								errs[i] = err
								return
							}
							now := time.Now()
							if wait == 0 {
								if !now.Before(deadline) {
									return
								}
								mu.Lock()
								admitted = append(admitted, now)
								mu.Unlock()
								continue
							}
							if now.Add(wait).After(deadline) {
								return
							}
							time.Sleep(wait) // real time is what is under test
						}
					})
				}
				wg.Wait()
				for _, err := range errs {
					if err != nil {
						t.Fatalf("Reserve: %v", err)
					}
				}
				elapsed := time.Since(start)
				n := len(admitted)
				want := int(span.Seconds() * rpm / 60)
				if n < want-1 || n > want+1 {
					t.Fatalf("%d workers admitted %d calls in %s at RPM %d, want %d ± 1", workers, n, span, rpm, want)
				}
				if most := int(elapsed.Seconds()*rpm/60) + 1; n > most {
					t.Fatalf("%d workers admitted %d calls in %s at RPM %d, more than the rate plus the burst (%d)", workers, n, elapsed, rpm, most)
				}
				slices.SortFunc(admitted, func(a, b time.Time) int { return a.Compare(b) })
				for i := 1; i < n; i++ {
					if gap := admitted[i].Sub(admitted[i-1]); gap < 400*time.Millisecond {
						t.Fatalf("admissions %d and %d only %s apart, want about 60/%d s: burst is 1", i-1, i, gap, rpm-1)
					}
				}
			})
		}
	})
}

func TestTPM(t *testing.T) {
	t.Parallel()

	// TPM 6000: burst 600 tokens, then 5400 per minute (90 per second).
	lim := ratelimit.Limits{TPM: 6000}
	const burst = 600
	perToken := time.Minute / 5400

	t.Run("ReservesTheEstimate", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		l := b.worker(t, lim)
		if !l.CountsTokens() {
			t.Fatal("CountsTokens() = false with a TPM limit")
		}
		if r := b.mustAllow(t, l, 42); r.Tokens != 42 {
			t.Fatalf("Reserve(42).Tokens = %d, want 42", r.Tokens)
		}
	})

	t.Run("HugeItemClampedToBurst", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		l := b.worker(t, lim)
		r := b.mustAllow(t, l, 1_000_000)
		if r.Tokens != burst {
			t.Fatalf("Reserve(1e6).Tokens = %d, want the burst %d (TPM/10)", r.Tokens, burst)
		}
		// The next huge item is not refused forever: it waits for a burst.
		full := burst * perToken
		b.mustWait(t, l, 1_000_000, full-500*time.Millisecond, full)
	})

	t.Run("SettleGivesBackOverReservation", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		l := b.worker(t, lim)
		r := b.mustAllow(t, l, burst)
		b.mustWait(t, l, 500, 500*perToken-500*time.Millisecond, 500*perToken)
		if err := l.Settle(b.ctx, r, 100); err != nil {
			t.Fatalf("Settle: %v", err)
		}
		b.mustAllow(t, b.worker(t, lim), 500) // the 500 given back
		// Only those: the 100 used are still charged.
		b.mustWait(t, l, 100, 100*perToken-500*time.Millisecond, 100*perToken)
	})

	t.Run("SettleUnusedGivesBackAll", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		l := b.worker(t, lim)
		r := b.mustAllow(t, l, burst)
		if err := l.Settle(b.ctx, r, 0); err != nil {
			t.Fatalf("Settle: %v", err)
		}
		b.mustAllow(t, l, burst)
	})

	t.Run("SettleChargesUnderReservationWithinBurst", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		l := b.worker(t, lim)
		r := b.mustAllow(t, l, 100)
		if err := l.Settle(b.ctx, r, burst); err != nil {
			t.Fatalf("Settle: %v", err)
		}
		b.mustWait(t, l, burst, burst*perToken-500*time.Millisecond, burst*perToken)
	})

	t.Run("SettleChargesHugeItemsRealUsage", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		l := b.worker(t, lim)
		r := b.mustAllow(t, l, 1_000_000)
		if err := l.Settle(b.ctx, r, 3000); err != nil {
			t.Fatalf("Settle: %v", err)
		}
		owed := (3000 - burst) * perToken
		b.mustWait(t, l, 1, owed-time.Second, owed+perToken)
	})

	t.Run("CancelGivesTokensBack", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		l := b.worker(t, lim)
		b.mustAllow(t, l, 300)
		r := b.mustAllow(t, l, 300)
		b.mustWait(t, l, 300, 300*perToken-500*time.Millisecond, 300*perToken)
		if err := l.Cancel(b.ctx, r); err != nil {
			t.Fatalf("Cancel: %v", err)
		}
		b.mustAllow(t, l, 300)
	})

	t.Run("DenialGivesBackTheRequest", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		both := ratelimit.Limits{RPM: 120, TPM: 6000}
		b.mustAllow(t, b.worker(t, lim), burst) // another worker drained the tokens
		l := b.worker(t, both)
		b.mustWait(t, l, burst, burst*perToken-500*time.Millisecond, burst*perToken)
		b.mustAllow(t, b.worker(t, ratelimit.Limits{RPM: 120}), 0)
	})
}

func TestHold(t *testing.T) {
	t.Parallel()

	lim := ratelimit.Limits{RPM: 120, TPM: 6000}

	t.Run("HoldsEveryWorkerOfTheKey", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		l1, l2 := b.worker(t, lim), b.worker(t, lim)
		if err := l1.Hold(b.ctx, 3*time.Second); err != nil {
			t.Fatalf("Hold: %v", err)
		}
		b.mustWait(t, l1, 10, 2800*time.Millisecond, 3*time.Second)
		b.mustWait(t, l2, 10, 2800*time.Millisecond, 3*time.Second)

		// A shorter hold later does not shorten it.
		if err := l2.Hold(b.ctx, time.Second); err != nil {
			t.Fatalf("Hold: %v", err)
		}
		b.mustWait(t, l1, 10, 2500*time.Millisecond, 3*time.Second)
		b.mustWait(t, l2, 10, 2500*time.Millisecond, 3*time.Second)

		// A longer one extends it.
		if err := l2.Hold(b.ctx, 5*time.Second); err != nil {
			t.Fatalf("Hold: %v", err)
		}
		b.mustWait(t, l1, 10, 4800*time.Millisecond, 5*time.Second)

		// Other provider keys are not held back.
		for _, pk := range []string{
			ratelimit.ProviderKey(testURL, "sk-test-OTHER"),
			ratelimit.ProviderKey("https://api.openai.com/v1", testAPIKey),
		} {
			b.mustAllow(t, ratelimit.New(b.rdb, pk, lim), 10)
		}
	})

	t.Run("EndsInTime", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		l := b.worker(t, lim)
		if err := l.Hold(b.ctx, 300*time.Millisecond); err != nil {
			t.Fatalf("Hold: %v", err)
		}
		wait := b.mustWait(t, l, 10, 200*time.Millisecond, 300*time.Millisecond)
		time.Sleep(wait) // real time is what is under test
		// The hold took nothing from the limits: the burst is still there.
		if r := b.mustAllow(t, l, 1_000_000); r.Tokens != 600 {
			t.Fatalf("Reserve after the hold: Tokens = %d, want the whole burst 600", r.Tokens)
		}
	})

	t.Run("NonPositiveIsNoHold", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		l := b.worker(t, lim)
		for _, d := range []time.Duration{0, -time.Second} {
			if err := l.Hold(b.ctx, d); err != nil {
				t.Fatalf("Hold(%s): %v", d, err)
			}
		}
		b.mustAllow(t, l, 10)
	})
}

func TestKeys(t *testing.T) {
	t.Parallel()
	b := setup(t)
	l := b.worker(t, ratelimit.Limits{RPM: 120, TPM: 6000})
	r := b.mustAllow(t, l, 100)
	if err := l.Settle(b.ctx, r, 60); err != nil {
		t.Fatalf("Settle: %v", err)
	}
	if err := l.Hold(b.ctx, 2*time.Second); err != nil {
		t.Fatalf("Hold: %v", err)
	}
	b.reserve(t, l, 10)

	rpm, tpm, hold := checkpoint.LimiterKeys(b.key)
	want := []string{"rate:" + rpm, "rate:" + tpm, hold} // redis_rate prefixes "rate:"
	var got []string
	iter := b.rdb.Scan(b.ctx, 0, "*", 100).Iterator()
	for iter.Next(b.ctx) {
		got = append(got, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatalf("SCAN: %v", err)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("keys = %q, want %q", got, want)
	}
	for _, k := range got {
		if strings.Contains(k, testAPIKey) || strings.Contains(k, "SECRET") {
			t.Errorf("key %q contains the API key", k)
		}
		if !strings.Contains(k, "{"+b.key+"}") {
			t.Errorf("key %q lacks the provider's hash tag {%s}", k, b.key)
		}
		if v := b.rdb.Get(b.ctx, k).Val(); strings.Contains(v, "SECRET") {
			t.Errorf("key %q holds the API key: %q", k, v)
		}
		if ttl := b.rdb.PTTL(b.ctx, k).Val(); ttl <= 0 {
			t.Errorf("key %q has TTL %s, want it to expire", k, ttl)
		}
	}
}
