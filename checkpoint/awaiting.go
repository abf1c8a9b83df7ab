package checkpoint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/llmfleet/llmfleet/agent"
)

// ErrNotAwaiting means the item does not await input (it is being resumed,
// or has finished): a decision cannot be recorded now.
var ErrNotAwaiting = errors.New("item does not await input")

// ErrRequestsChanged means the item's requests changed between the read
// and the write of a decision: read them again.
var ErrRequestsChanged = errors.New("requests changed meanwhile")

// Park stores an agent item's requests for a person and parks it
// (awaiting_input) under the attempt's claim, giving back a call Begin
// counted when unsent. The requests include the decided ones of earlier
// parks, which the worker keeps. It fails with ErrClaimLost when another
// attempt holds the item.
func (s *Store) Park(ctx context.Context, name, id, token string, reqs []agent.Request, unsent bool) error {
	b, err := json.Marshal(reqs)
	if err != nil {
		return fmt.Errorf("park item %q of job %q: %w", id, name, err)
	}
	out, err := parkScript.Run(ctx, s.rdb, keys(name), id, token, b, flag(unsent)).Text()
	if err != nil {
		return fmt.Errorf("park item %q of job %q: %w", id, name, err)
	}
	if out == "lost" {
		return ErrClaimLost
	}
	return nil
}

// Requests returns an item's requests for a person (decided or not), and
// their stored text, which Decide needs to detect a concurrent change.
func (s *Store) Requests(ctx context.Context, name, id string) ([]agent.Request, string, error) {
	raw, err := s.rdb.HGet(ctx, keys(name)[kAwaiting], id).Result()
	if errors.Is(err, redis.Nil) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("read requests of item %q of job %q: %w", id, name, err)
	}
	var reqs []agent.Request
	if err := json.Unmarshal([]byte(raw), &reqs); err != nil {
		return nil, "", fmt.Errorf("read requests of item %q of job %q: %w", id, name, err)
	}
	return reqs, raw, nil
}

// Decide stores reqs (with a new decision) for an item that still awaits
// input, if its requests are still as read (read is Requests' text). When
// none is left undecided the item goes back to pending, for its task to
// resume it. It fails with ErrNotAwaiting when the item is not parked,
// ErrRequestsChanged when someone wrote them since, ErrItemNotFound for an
// unknown item.
func (s *Store) Decide(ctx context.Context, name, id, read string, reqs []agent.Request) error {
	b, err := json.Marshal(reqs)
	if err != nil {
		return fmt.Errorf("record decision for item %q of job %q: %w", id, name, err)
	}
	complete := len(agent.Undecided(reqs)) == 0
	out, err := decideScript.Run(ctx, s.rdb, keys(name), id, read, b, flag(complete)).Text()
	if err != nil {
		return fmt.Errorf("record decision for item %q of job %q: %w", id, name, err)
	}
	switch out {
	case "ok":
		return nil
	case "unknown":
		return fmt.Errorf("item %q of job %q: %w", id, name, ErrItemNotFound)
	case "changed":
		return ErrRequestsChanged
	}
	return fmt.Errorf("item %q of job %q is %s: %w", id, name, out, ErrNotAwaiting)
}

// Waiting is one parked item's requests, as Inbox lists them.
type Waiting struct {
	Item     string
	Requests []agent.Request
}

// Inbox calls fn with the job's parked items and their requests, in input
// order, a batch at a time.
func (s *Store) Inbox(ctx context.Context, name string, fn func([]Waiting) error) error {
	return s.WithRequests(ctx, name, []ItemStatus{ItemAwaiting}, fn)
}

// WithRequests calls fn with the job's items of the given statuses that
// have requests for a person (answered or not), in input order.
func (s *Store) WithRequests(ctx context.Context, name string, statuses []ItemStatus, fn func([]Waiting) error) error {
	k := keys(name)
	return s.Walk(ctx, name, Want{Status: statuses}, func(vs []View) error {
		ids := make([]string, len(vs))
		for i, v := range vs {
			ids[i] = v.ID
		}
		vals, err := s.rdb.HMGet(ctx, k[kAwaiting], ids...).Result()
		if err != nil {
			return fmt.Errorf("read inbox of job %q: %w", name, err)
		}
		out := make([]Waiting, 0, len(vs))
		for i, v := range vals {
			raw, _ := v.(string)
			if raw == "" {
				continue
			}
			w := Waiting{Item: ids[i]}
			if err := json.Unmarshal([]byte(raw), &w.Requests); err != nil {
				return fmt.Errorf("read inbox of job %q: item %q: %w", name, ids[i], err)
			}
			out = append(out, w)
		}
		if len(out) == 0 {
			return nil
		}
		return fn(out)
	})
}

// Restored is what RestoreParked did.
type Restored string

// RestoreParked outcomes.
const (
	RestoredParked Restored = "parked" // waits for a person again
	RestoredReady  Restored = "ready"  // every request is answered: pending, to be enqueued
)

// RestoreParked gives a pending item the steps and requests saved by an
// earlier process (the embedded mode keeps them in NAME.awaiting.jsonl,
// since its Redis lives in memory) and parks it, or leaves it pending when
// every request is answered: the item resumes at its parked step, with
// nothing repeated. It returns "" and changes nothing when the item is not
// pending or already has steps.
func (s *Store) RestoreParked(ctx context.Context, name, id string, steps []Step, reqs []agent.Request) (Restored, error) {
	b, err := json.Marshal(reqs)
	if err != nil {
		return "", fmt.Errorf("restore parked item %q of job %q: %w", id, name, err)
	}
	args := []any{id, b, flag(len(agent.Undecided(reqs)) == 0)}
	for i, st := range steps {
		if st.N != i+1 {
			return "", fmt.Errorf("restore parked item %q of job %q: step %d is numbered %d", id, name, i+1, st.N)
		}
		sb, err := json.Marshal(st)
		if err != nil {
			return "", fmt.Errorf("restore parked item %q of job %q: %w", id, name, err)
		}
		args = append(args, sb)
	}
	out, err := restoreParkedScript.Run(ctx, s.rdb, keys(name), args...).Text()
	if err != nil {
		return "", fmt.Errorf("restore parked item %q of job %q: %w", id, name, err)
	}
	switch Restored(out) {
	case RestoredParked, RestoredReady:
		return Restored(out), nil
	}
	return "", nil
}
