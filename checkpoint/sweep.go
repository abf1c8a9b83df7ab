package checkpoint

import (
	"context"
	"encoding/json"
	"fmt"
)

// Cancel marks the job cancelled and fails every pending item as cancelled.
// Active items end on their own: their next check sees the cancellation. A
// finished job cannot be cancelled.
func (s *Store) Cancel(ctx context.Context, name string) (int, error) {
	res, err := cancelScript.Run(ctx, s.rdb, keys(name)).Text()
	if err != nil {
		return 0, fmt.Errorf("cancel job %q: %w", name, err)
	}
	switch res {
	case "missing":
		return 0, fmt.Errorf("cancel job %q: %w", name, ErrJobNotFound)
	case "finished":
		return 0, fmt.Errorf("cancel job %q: %w", name, ErrJobFinished)
	}
	return s.SweepCancelled(ctx, name)
}

// Sweep fails every pending item (and every item awaiting a person) of the job with f (an expired deadline or
// a cancellation) and returns how many it failed. It scans the status hash
// in batches, so it never blocks Redis for long, and is safe to run
// concurrently with workers and with itself.
func (s *Store) Sweep(ctx context.Context, name string, f Failure) (int, error) {
	now := s.now()
	if f.LastFailed.IsZero() {
		f.LastFailed = now
	}
	if f.FirstFailed.IsZero() {
		f.FirstFailed = now
	}
	b, err := json.Marshal(f)
	if err != nil {
		return 0, fmt.Errorf("sweep job %q: %w", name, err)
	}
	k := keys(name)
	total := 0
	var cursor uint64
	for {
		kv, next, err := s.rdb.HScan(ctx, k[kStatus], cursor, "", 1000).Result()
		if err != nil {
			return total, fmt.Errorf("sweep job %q: %w", name, err)
		}
		args := []any{string(b), ms(now)}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == string(ItemPending) || kv[i+1] == string(ItemAwaiting) {
				args = append(args, kv[i])
			}
		}
		if len(args) > 2 {
			n, err := sweepScript.Run(ctx, s.rdb, k, args...).Int()
			if err != nil {
				return total, fmt.Errorf("sweep job %q: %w", name, err)
			}
			total += n
		}
		cursor = next
		if cursor == 0 {
			return total, nil
		}
	}
}

// The failures of job-level ends; the classes are package provider's
// Cancelled and Expired.
var (
	cancelledFailure = Failure{Class: "cancelled", Reason: "job cancelled"}
	expiredFailure   = Failure{Class: "expired", Reason: "job deadline passed"}
)

// SweepCancelled fails the pending items of a cancelled job as cancelled
// (an item released by a worker after Cancel's own sweep, say).
func (s *Store) SweepCancelled(ctx context.Context, name string) (int, error) {
	return s.Sweep(ctx, name, cancelledFailure)
}

// Expire records that the job's deadline passed and fails its pending
// items as expired, so its counts are final without waiting for each task
// to come round. Workers and status --wait both call it; it is idempotent.
func (s *Store) Expire(ctx context.Context, name string) (int, error) {
	if err := s.MarkExpired(ctx, name); err != nil {
		return 0, err
	}
	return s.Sweep(ctx, name, expiredFailure)
}

// MarkExpired records that the job's deadline passed.
func (s *Store) MarkExpired(ctx context.Context, name string) error {
	err := markExpiredScript.Run(ctx, s.rdb, keys(name)).Err()
	if err != nil {
		return fmt.Errorf("mark job %q expired: %w", name, err)
	}
	return nil
}
