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
	// ItemAwaiting is an agent item parked until a person answers its
	// requests; no task holds it.
	ItemAwaiting ItemStatus = "awaiting_input"
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
	CostUSD float64 `json:"cost_usd"`
	// UsageEstimated says the provider sent no usage: the tokens were
	// counted by the worker.
	UsageEstimated bool `json:"usage_estimated,omitempty"`
	// FinishReason is the provider's: stop, length, ...
	FinishReason string `json:"finish_reason,omitempty"`
	// Embedding is an embedding item's vector (one input) or vectors (an
	// array of inputs, in order).
	Embedding json.RawMessage `json:"embedding,omitempty"`
	// Body and RequestID are the provider's response body and request id,
	// kept for items of OpenAI batch files (not in the export line: export
	// --format openai-batch writes them).
	Body      json.RawMessage `json:"-"`
	RequestID string          `json:"-"`
	// Parsed is the answer as JSON, when JSON was asked for
	// (response_format json_object or json_schema).
	Parsed json.RawMessage `json:"parsed,omitempty"`
	// Steps and ToolCalls are an agent item's model calls that were
	// answered and its tool calls.
	Steps      int       `json:"steps,omitempty"`
	ToolCalls  int       `json:"tool_calls,omitempty"`
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
	RecordedNew      Recorded = "new"            // first time seen: pending
	RecordedPending  Recorded = "pending"        // known, not finished
	RecordedActive   Recorded = "active"         // known, being processed
	RecordedDone     Recorded = "done"           // known, done
	RecordedFailed   Recorded = "failed"         // known, failed
	RecordedConflict Recorded = "conflict"       // id known with different content
	RecordedAwaiting Recorded = "awaiting_input" // known, parked for a person
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

// Verdict is what a claim found.
type Verdict string

// Claim verdicts.
const (
	VerdictClaimed Verdict = "ok"      // the attempt holds the item: go ahead
	VerdictDone    Verdict = "done"    // already done: nothing to do
	VerdictFailed  Verdict = "failed"  // already failed: nothing to do (see ClaimReplay)
	VerdictMissing Verdict = "missing" // the job was deleted
	VerdictUnknown Verdict = "unknown" // no such item in the job
)

// Claimed is what an attempt learns when it claims an item.
type Claimed struct {
	Verdict Verdict
	// Replayed says the item had failed and its archived task was run from
	// outside (asynqmon, the Inspector): the claim replayed it, with a fresh
	// attempt budget, as `producer replay` would.
	Replayed bool
	// Spend is what the job had spent when the item was claimed.
	Spend Spend
	// Calls is the provider calls made for the item before this attempt.
	Calls int
	// Call is the number of the call Begin started for this attempt (Calls
	// + 1), or 0 when it started none (Refused says why). Claim never starts
	// one.
	Call int
	// Refused says why Begin started no call: RefusedEnded (the job was
	// cancelled or is past its deadline) or RefusedSpent (the item's
	// budget is spent).
	Refused Refusal
	Input   []byte
	Policy  Policy
	State   State
	LastErr *Failure
}

// Refusal is why Begin started no call.
type Refusal string

// Refusals.
const (
	RefusedEnded Refusal = "ended" // the job was cancelled or is past its deadline
	RefusedSpent Refusal = "spent" // the item's budget of calls is spent
)

// Claim marks the item active under token for one attempt and returns what
// the attempt needs. It does not spend an attempt: StartCall does.
func (s *Store) Claim(ctx context.Context, name, id, token string) (Claimed, error) {
	return s.claimOne(ctx, name, id, token, "", false)
}

// ClaimReplay replays a failed item and claims it, in one step: its task
// was run from asynq's archive (asynqmon's Run, the Inspector's RunTask),
// which behaves like `producer replay`.
func (s *Store) ClaimReplay(ctx context.Context, name, id, token string) (Claimed, error) {
	return s.claimOne(ctx, name, id, token, "replay", false)
}

// Begin is Claim and StartCall in one script, the worker's first step: it
// claims the item and counts the attempt's call against the item's budget
// (the policy's MaxAttempts), unless the job was cancelled or is past its
// deadline or the budget is spent: Claimed.Call is then 0, and the claim is
// held so that the attempt can record why. An attempt that then makes no
// call gives the call back with ReleaseUnsent or FailUnsent. replay is
// ClaimReplay's. Concurrent Begins of one job share a script run (see
// coalescer).
func (s *Store) Begin(ctx context.Context, name, id, token string, replay bool) (Claimed, error) {
	if replay {
		return s.claimOne(ctx, name, id, token, "replay", true)
	}
	return s.batch.begins.do(ctx, name, claimReq{id: id, token: token})
}

// claimReq is one item to claim.
type claimReq struct{ id, token string }

// maxBatch bounds the items of one coalesced script run.
const maxBatch = 64

func (s *Store) claimOne(ctx context.Context, name, id, token, mode string, start bool) (Claimed, error) {
	out, err := s.claim(ctx, name, mode, start, []claimReq{{id: id, token: token}})
	if err != nil {
		return Claimed{}, err
	}
	return out[0], nil
}

func (s *Store) claim(ctx context.Context, name, mode string, start bool, reqs []claimReq) ([]Claimed, error) {
	args := make([]any, 0, 3+2*len(reqs))
	args = append(args, ms(s.now()), mode, flag(start))
	for _, r := range reqs {
		args = append(args, r.id, r.token)
	}
	errf := func(err error) error {
		if len(reqs) == 1 {
			return fmt.Errorf("claim item %q of job %q: %w", reqs[0].id, name, err)
		}
		return fmt.Errorf("claim %d items of job %q: %w", len(reqs), name, err)
	}
	res, err := claimScript.Run(ctx, s.rdb, keys(name), args...).Slice()
	if err != nil {
		return nil, errf(err)
	}
	if len(res) != len(reqs)+1 {
		return nil, errf(fmt.Errorf("claim script answered %d values for %d items", len(res)-1, len(reqs)))
	}
	var job []any
	var pol Policy
	if j, ok := res[0].([]any); ok && len(j) == 5 {
		job = j
		if pol, err = s.policies.decode(name, str(j[0])); err != nil {
			return nil, errf(fmt.Errorf("decode policy: %w", err))
		}
	}
	out := make([]Claimed, len(reqs))
	for i := range reqs {
		r, _ := res[i+1].([]any)
		if len(r) == 0 {
			return nil, errf(fmt.Errorf("claim script answered no verdict for item %q", reqs[i].id))
		}
		c := Claimed{Verdict: Verdict(str(r[0]))}
		if c.Verdict == VerdictClaimed && len(r) == 7 && job != nil {
			c.Calls = toInt(r[1])
			c.Input = []byte(str(r[2]))
			c.Replayed = r[4] == "replayed"
			c.Call = toInt(r[5])
			c.Refused = Refusal(str(r[6]))
			c.Policy = pol
			c.State = State(str(job[1]))
			c.Spend = Spend{TokensIn: int64(toInt(job[2])), TokensOut: int64(toInt(job[3])), CostMicros: int64(toInt(job[4]))}
			if le := str(r[3]); le != "" {
				// A damaged record costs its item its last error, never
				// the other items of the batch their claims.
				f := new(Failure)
				if json.Unmarshal([]byte(le), f) == nil {
					c.LastErr = f
				}
			}
		}
		out[i] = c
	}
	return out, nil
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
// counted as a duplicate and changes nothing else. Concurrent commits of
// one job share a script run (see coalescer).
func (s *Store) Commit(ctx context.Context, name, token string, r Result) (Committed, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return "", fmt.Errorf("commit item %q of job %q: %w", r.ID, name, err)
	}
	return s.commitOne(ctx, name, commitReq{r: r, line: b, in: r.TokensIn, out: r.TokensOut, cost: r.CostUSD, response: responseOf(r)})
}

// Response is what export --format openai-batch writes as a done item's
// "response": the provider's status, request id and body.
type Response struct {
	StatusCode int             `json:"status_code"`
	RequestID  string          `json:"request_id"`
	Body       json.RawMessage `json:"body"`
}

// responseOf is the response record of a result that kept its body.
func responseOf(r Result) []byte {
	if len(r.Body) == 0 {
		return nil
	}
	b, _ := json.Marshal(Response{StatusCode: 200, RequestID: r.RequestID, Body: r.Body})
	return b
}

// CommitRun is Commit for an agent item, whose usage its steps already
// added to the job's spend (AppendStep): the result counts for the job's
// done items and no usage is added twice.
func (s *Store) CommitRun(ctx context.Context, name, token string, r Result) (Committed, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return "", fmt.Errorf("commit item %q of job %q: %w", r.ID, name, err)
	}
	return s.commitOne(ctx, name, commitReq{r: r, line: b})
}

func (s *Store) commitOne(ctx context.Context, name string, q commitReq) (Committed, error) {
	r := q.r
	out, err := s.batch.commits.do(ctx, name, q)
	if err != nil {
		return "", err
	}
	if out == "unknown" {
		return "", fmt.Errorf("commit item %q of job %q: %w", r.ID, name, ErrItemNotFound)
	}
	return out, nil
}

// commitReq is one result to commit, with its export line and the usage
// it adds to the job's spend.
type commitReq struct {
	r        Result
	line     []byte
	in, out  int
	cost     float64
	response []byte // the provider's response (batch items), or nil
}

func (s *Store) commit(ctx context.Context, name string, reqs []commitReq) ([]Committed, error) {
	args := make([]any, 0, 1+7*len(reqs))
	args = append(args, ms(s.now()))
	for _, q := range reqs {
		args = append(args, q.r.ID, q.line, q.in, q.out, q.r.Model, int64(q.cost*1e6+0.5), q.response)
	}
	errf := func(err error) error {
		if len(reqs) == 1 {
			return fmt.Errorf("commit item %q of job %q: %w", reqs[0].r.ID, name, err)
		}
		return fmt.Errorf("commit %d items of job %q: %w", len(reqs), name, err)
	}
	res, err := commitScript.Run(ctx, s.rdb, keys(name), args...).StringSlice()
	if err != nil {
		return nil, errf(err)
	}
	if len(res) != len(reqs) {
		return nil, errf(fmt.Errorf("commit script answered %d outcomes for %d items", len(res), len(reqs)))
	}
	out := make([]Committed, len(res))
	for i, r := range res {
		out[i] = Committed(r)
	}
	return out, nil
}

// Fail records the item's final failure. It is a no-op for an item that is
// already done or failed, and fails with ErrClaimLost when another attempt
// holds the item.
func (s *Store) Fail(ctx context.Context, name, id, token string, f Failure) (bool, error) {
	return s.fail(ctx, name, id, token, f, false)
}

// FailUnsent is Fail for an attempt whose call, counted by Begin, never went
// out (the prompt cannot fit, the stored item is damaged): the call is given
// back in the same step.
func (s *Store) FailUnsent(ctx context.Context, name, id, token string, f Failure) (bool, error) {
	return s.fail(ctx, name, id, token, f, true)
}

func (s *Store) fail(ctx context.Context, name, id, token string, f Failure, unsent bool) (bool, error) {
	b, err := json.Marshal(f)
	if err != nil {
		return false, fmt.Errorf("fail item %q of job %q: %w", id, name, err)
	}
	out, err := failScript.Run(ctx, s.rdb, keys(name), id, token, string(b), ms(s.now()), flag(unsent)).Text()
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
	return s.release(ctx, name, id, token, last, false)
}

// ReleaseUnsent is Release for an attempt whose call, counted by Begin, did
// not go out (it waits for the limiter, the breaker or a budget): the call
// is given back in the same step, so the item's budget is untouched.
func (s *Store) ReleaseUnsent(ctx context.Context, name, id, token string) error {
	return s.release(ctx, name, id, token, nil, true)
}

func (s *Store) release(ctx context.Context, name, id, token string, last *Failure, unsent bool) error {
	le := ""
	if last != nil {
		b, err := json.Marshal(last)
		if err != nil {
			return fmt.Errorf("release item %q of job %q: %w", id, name, err)
		}
		le = string(b)
	}
	out, err := releaseScript.Run(ctx, s.rdb, keys(name), id, token, le, flag(unsent)).Text()
	if err != nil {
		return fmt.Errorf("release item %q of job %q: %w", id, name, err)
	}
	if out == "lost" {
		return ErrClaimLost
	}
	return nil
}

func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
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
