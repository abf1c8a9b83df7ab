package checkpoint

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// ItemStatus is one item's status.
type ItemStatus string

// Item statuses. Pending covers queued, waiting for a retry, a breaker or the
// limiter.
const (
	ItemPending ItemStatus = "pending"
	ItemActive  ItemStatus = "active"
	ItemDone    ItemStatus = "done"
	ItemFailed  ItemStatus = "failed"
)

// Result is one done item, exactly as export writes it.
type Result struct {
	ID        string `json:"id"`
	Output    string `json:"output"`
	Model     string `json:"model"`
	Attempts  int    `json:"attempts"`
	Truncated bool   `json:"truncated"`
	TokensIn  int    `json:"tokens_in"`
	TokensOut int    `json:"tokens_out"`
	// TokensDropped is how many prompt tokens truncation removed.
	TokensDropped int `json:"tokens_dropped,omitempty"`
	// CostUSD is the call's estimated cost (from the model price table).
	CostUSD    float64   `json:"cost_usd"`
	FinishedAt time.Time `json:"finished_at"`
	// Metadata is the item's metadata, null when it had none.
	Metadata json.RawMessage `json:"metadata"`
}

// Failure is an item's failure: the final record of a failed item, or the
// last retryable failure of a pending one.
type Failure struct {
	Class       string    `json:"class"`
	Reason      string    `json:"reason"`
	Attempts    int       `json:"attempts"`
	Status      int       `json:"status,omitempty"`
	FirstFailed time.Time `json:"first_failed_at,omitzero"`
	LastFailed  time.Time `json:"last_failed_at,omitzero"`
	// Archived says the item's task went to asynq's archive with this
	// failure, so a later run of that task (asynqmon's Run button, the
	// Inspector's RunTask) is a replay.
	Archived bool `json:"archived,omitempty"`
}

// Entry is an item to record: its id and canonical JSON.
type Entry struct {
	ID        string
	Canonical []byte
}

// Recorded is what Record found for an entry.
type Recorded string

// Record outcomes.
const (
	RecordedNew      Recorded = "new"      // first time seen: pending
	RecordedPending  Recorded = "pending"  // known, not finished
	RecordedActive   Recorded = "active"   // known, being processed
	RecordedDone     Recorded = "done"     // known, done
	RecordedFailed   Recorded = "failed"   // known, failed
	RecordedConflict Recorded = "conflict" // id known with different content
)

// maxRecordBatchBytes bounds one Record script's arguments.
const maxRecordBatchBytes = 4 << 20

// Record stores entries that are new to the job (as pending, appended to the
// input order) and reports what it found for each. Entries are written before
// anything is enqueued, so a producer crash loses nothing.
func (s *Store) Record(ctx context.Context, name string, entries []Entry) ([]Recorded, error) {
	out := make([]Recorded, 0, len(entries))
	k := keys(name)
	for start := 0; start < len(entries); {
		args := []any{ms(s.now())}
		size, end := 0, start
		for end < len(entries) && (end == start || size+len(entries[end].Canonical) < maxRecordBatchBytes) {
			args = append(args, entries[end].ID, entries[end].Canonical)
			size += len(entries[end].Canonical)
			end++
		}
		res, err := recordScript.Run(ctx, s.rdb, k, args...).StringSlice()
		if err != nil {
			return nil, fmt.Errorf("record items of job %q: %w", name, err)
		}
		if len(res) == 1 && res[0] == "missing" && end-start != 1 {
			return nil, fmt.Errorf("record items of job %q: %w", name, ErrJobNotFound)
		}
		for _, r := range res {
			if r == "missing" {
				return nil, fmt.Errorf("record items of job %q: %w", name, ErrJobNotFound)
			}
			out = append(out, Recorded(r))
		}
		start = end
	}
	return out, nil
}

// Claimed is what an attempt learns when it claims an item.
type Claimed struct {
	// Verdict is "ok" (go ahead), "done" or "failed" (nothing to do),
	// "missing" (the job was deleted) or "unknown" (no such item).
	Verdict string
	// Replayed says the item had failed and its archived task was run from
	// outside (asynqmon, the Inspector): the claim replayed it, with a fresh
	// attempt budget, as `producer replay` would.
	Replayed bool
	// Spend is what the job had spent when the item was claimed.
	Spend   Spend
	Calls   int
	Input   []byte
	Policy  Policy
	State   State
	LastErr *Failure
}

// Claim marks the item active under token for one attempt and returns what
// the attempt needs. It does not spend an attempt: StartCall does.
func (s *Store) Claim(ctx context.Context, name, id, token string) (Claimed, error) {
	return s.claim(ctx, name, id, token, "")
}

// ClaimReplay replays a failed item and claims it, in one step: its task
// was run from asynq's archive (asynqmon's Run, the Inspector's RunTask),
// which behaves like `producer replay`.
func (s *Store) ClaimReplay(ctx context.Context, name, id, token string) (Claimed, error) {
	return s.claim(ctx, name, id, token, "replay")
}

func (s *Store) claim(ctx context.Context, name, id, token, mode string) (Claimed, error) {
	res, err := claimScript.Run(ctx, s.rdb, keys(name), id, token, ms(s.now()), mode).Slice()
	if err != nil {
		return Claimed{}, fmt.Errorf("claim item %q of job %q: %w", id, name, err)
	}
	c := Claimed{Verdict: res[0].(string)}
	if c.Verdict != "ok" {
		return c, nil
	}
	c.Calls = toInt(res[1])
	c.Input = []byte(res[2].(string))
	if err := json.Unmarshal([]byte(res[3].(string)), &c.Policy); err != nil {
		return Claimed{}, fmt.Errorf("claim item %q of job %q: decode policy: %w", id, name, err)
	}
	c.State = State(res[4].(string))
	c.Replayed = len(res) > 6 && res[6] == "replayed"
	if len(res) > 9 {
		c.Spend = Spend{TokensIn: int64(toInt(res[7])), TokensOut: int64(toInt(res[8])), CostMicros: int64(toInt(res[9]))}
	}
	if le, _ := res[5].(string); le != "" {
		c.LastErr = new(Failure)
		if err := json.Unmarshal([]byte(le), c.LastErr); err != nil {
			return Claimed{}, fmt.Errorf("claim item %q of job %q: decode last error: %w", id, name, err)
		}
	}
	return c, nil
}

func toInt(v any) int {
	switch x := v.(type) {
	case int64:
		return int(x)
	case string:
		n, _ := strconv.Atoi(x)
		return n
	}
	return 0
}

// StartCall spends one attempt of the item's budget before a provider call
// and returns the number of calls including this one. It fails with
// ErrBudgetSpent when max calls were already made and ErrClaimLost when
// another attempt holds the item.
func (s *Store) StartCall(ctx context.Context, name, id, token string, max int) (int, error) {
	n, err := startCallScript.Run(ctx, s.rdb, keys(name), id, token, max, ms(s.now())).Int()
	if err != nil {
		return 0, fmt.Errorf("count call of item %q of job %q: %w", id, name, err)
	}
	switch n {
	case -1:
		return 0, ErrClaimLost
	case -2:
		return 0, ErrBudgetSpent
	case -3:
		return 0, ErrJobEnded
	}
	return n, nil
}

// Committed is the outcome of Commit.
type Committed string

// Commit outcomes.
const (
	Committed1       Committed = "committed"
	CommitDuplicate  Committed = "duplicate" // the item was already done: nothing changed but the duplicates counter
	CommitJobMissing Committed = "missing"   // the job was deleted
)

// Commit records the item's result once. A second commit of a done item is
// counted as a duplicate and changes nothing else.
func (s *Store) Commit(ctx context.Context, name, token string, r Result) (Committed, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return "", fmt.Errorf("commit item %q of job %q: %w", r.ID, name, err)
	}
	out, err := commitScript.Run(ctx, s.rdb, keys(name), r.ID, token, string(b), r.TokensIn, r.TokensOut, ms(s.now()),
		r.Model, int64(r.CostUSD*1e6+0.5)).Text()
	if err != nil {
		return "", fmt.Errorf("commit item %q of job %q: %w", r.ID, name, err)
	}
	if out == "unknown" {
		return "", fmt.Errorf("commit item %q of job %q: %w", r.ID, name, ErrItemNotFound)
	}
	return Committed(out), nil
}

// Fail records the item's final failure. It is a no-op for an item that is
// already done or failed, and fails with ErrClaimLost when another attempt
// holds the item.
func (s *Store) Fail(ctx context.Context, name, id, token string, f Failure) (bool, error) {
	b, err := json.Marshal(f)
	if err != nil {
		return false, fmt.Errorf("fail item %q of job %q: %w", id, name, err)
	}
	out, err := failScript.Run(ctx, s.rdb, keys(name), id, token, string(b), ms(s.now())).Text()
	if err != nil {
		return false, fmt.Errorf("fail item %q of job %q: %w", id, name, err)
	}
	switch out {
	case "lost":
		return false, ErrClaimLost
	case "failed":
		return true, nil
	}
	return false, nil
}

// Release puts an item the attempt holds back to pending (a retry is
// scheduled, or the worker is shutting down), recording the retryable
// failure when last is not nil.
func (s *Store) Release(ctx context.Context, name, id, token string, last *Failure) error {
	le := ""
	if last != nil {
		b, err := json.Marshal(last)
		if err != nil {
			return fmt.Errorf("release item %q of job %q: %w", id, name, err)
		}
		le = string(b)
	}
	out, err := releaseScript.Run(ctx, s.rdb, keys(name), id, token, le).Text()
	if err != nil {
		return fmt.Errorf("release item %q of job %q: %w", id, name, err)
	}
	if out == "lost" {
		return ErrClaimLost
	}
	return nil
}

// Conflicts reports, for each entry, whether the job already holds its id
// with different content. It writes nothing (--strict checks before
// recording).
func (s *Store) Conflicts(ctx context.Context, name string, entries []Entry) ([]bool, error) {
	out := make([]bool, len(entries))
	if len(entries) == 0 {
		return out, nil
	}
	ids := make([]string, len(entries))
	for i, e := range entries {
		ids[i] = e.ID
	}
	vals, err := s.rdb.HMGet(ctx, keys(name)[kInput], ids...).Result()
	if err != nil {
		return nil, fmt.Errorf("check items of job %q: %w", name, err)
	}
	for i, v := range vals {
		if cur, ok := v.(string); ok && cur != string(entries[i].Canonical) {
			out[i] = true
		}
	}
	return out, nil
}

// RecordDone records entries that are already done elsewhere (an earlier
// run's results file) together with their result lines. Entries the job
// already holds are left as they are.
func (s *Store) RecordDone(ctx context.Context, name string, entries []Entry, results [][]byte) error {
	if len(entries) != len(results) {
		return fmt.Errorf("record done items of job %q: %d entries, %d results", name, len(entries), len(results))
	}
	args := []any{ms(s.now())}
	for i, e := range entries {
		args = append(args, e.ID, e.Canonical, results[i])
	}
	if err := recordDoneScript.Run(ctx, s.rdb, keys(name), args...).Err(); err != nil {
		return fmt.Errorf("record done items of job %q: %w", name, err)
	}
	return nil
}
