package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// ReplayOutcome is what Replay did with one item.
type ReplayOutcome string

// Replay outcomes.
const (
	Replayed         ReplayOutcome = "replayed"   // failed → pending, budget reset
	ReplayNotFailed  ReplayOutcome = "not_failed" // pending, active or done: nothing to do
	ReplayUnknown    ReplayOutcome = "unknown"    // no such item in the job
	ReplayJobMissing ReplayOutcome = "missing"    // the job does not exist
)

// ReplayResult is one item's replay outcome.
type ReplayResult struct {
	ID      string
	Outcome ReplayOutcome
	// Status is the item's status when it was not failed.
	Status ItemStatus
	// Archived says the failed task was sent to asynq's archive.
	Archived bool
}

// Replay puts failed items back to pending with a fresh attempt budget (the
// calls counter, failure and last error are cleared) and reopens the job.
// Items that are not failed are left alone, so replaying twice never runs an
// item twice. One script per batch keeps every count consistent.
func (s *Store) Replay(ctx context.Context, name string, ids []string) ([]ReplayResult, error) {
	out := make([]ReplayResult, 0, len(ids))
	for start := 0; start < len(ids); start += walkBatch {
		batch := ids[start:min(len(ids), start+walkBatch)]
		args := make([]any, 0, len(batch)+1)
		args = append(args, ms(s.now()))
		for _, id := range batch {
			args = append(args, id)
		}
		res, err := replayScript.Run(ctx, s.rdb, keys(name), args...).StringSlice()
		if err != nil {
			return nil, fmt.Errorf("replay items of job %q: %w", name, err)
		}
		if len(res) == 1 && res[0] == "missing" {
			return nil, fmt.Errorf("replay items of job %q: %w", name, ErrJobNotFound)
		}
		for i, r := range res {
			rr := ReplayResult{ID: batch[i]}
			outcome, detail, _ := strings.Cut(r, ":")
			rr.Outcome = ReplayOutcome(outcome)
			switch rr.Outcome {
			case ReplayNotFailed:
				rr.Status = ItemStatus(detail)
			case Replayed:
				rr.Archived = detail == "archived"
			}
			out = append(out, rr)
		}
	}
	return out, nil
}

// ErrNotEditable is returned when an edit targets an item that is done or
// being processed.
var ErrNotEditable = errors.New("only failed or pending items can be edited")

// ReplaceInput replaces the stored input of an item that is failed or
// pending (replay --edit). It returns the item's status.
func (s *Store) ReplaceInput(ctx context.Context, name string, e Entry) (ItemStatus, error) {
	res, err := replaceInputScript.Run(ctx, s.rdb, keys(name), e.ID, e.Canonical).Text()
	if err != nil {
		return "", fmt.Errorf("edit item %q of job %q: %w", e.ID, name, err)
	}
	switch res {
	case "missing":
		return "", fmt.Errorf("edit item %q of job %q: %w", e.ID, name, ErrJobNotFound)
	case "unknown":
		return "", fmt.Errorf("edit item %q of job %q: %w", e.ID, name, ErrItemNotFound)
	case "failed", "pending":
		return ItemStatus(res), nil
	}
	return ItemStatus(res), fmt.Errorf("edit item %q of job %q: it is %s: %w", e.ID, name, res, ErrNotEditable)
}
