package checkpoint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llmfleet/llmfleet/models"
)

// State is a job's state as users see it.
type State string

// Job states.
const (
	StateRunning   State = "running"
	StateDone      State = "done"
	StatePaused    State = "paused"
	StateExpired   State = "expired"
	StateCancelled State = "cancelled"
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

// Errors.
var (
	ErrJobNotFound  = errors.New("job not found")
	ErrBadJobName   = errors.New("job name must be 1-100 characters of letters, digits, '.', '_' or '-', starting with a letter or digit")
	ErrClaimLost    = errors.New("item is held by another attempt")
	ErrBudgetSpent  = errors.New("attempt budget spent")
	ErrItemNotFound = errors.New("item not found in job")
	ErrJobEnded     = errors.New("job cancelled or past its deadline")
	ErrJobFinished  = errors.New("job already finished")
)

var jobNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$`)

// ValidateJobName reports whether name can be a job name. Braces and colons
// are excluded because the name is a Redis Cluster hash tag.
func ValidateJobName(name string) error {
	if !jobNameRE.MatchString(name) {
		return fmt.Errorf("job %q: %w", name, ErrBadJobName)
	}
	return nil
}

// Policy is how a job's items are processed. It is fixed when the job is
// created; only the deadline and the budgets may change later.
type Policy struct {
	Model       string        `json:"model,omitempty"`
	System      string        `json:"system,omitempty"`
	Template    string        `json:"template,omitempty"`
	JSONOutput  bool          `json:"json_output,omitempty"`
	Queue       string        `json:"queue"`
	MaxAttempts int           `json:"max_attempts"`
	BackoffMin  time.Duration `json:"backoff_min"`
	BackoffMax  time.Duration `json:"backoff_max"`
	Timeout     time.Duration `json:"timeout"`
	Deadline    time.Time     `json:"deadline,omitzero"`
	Retention   time.Duration `json:"retention"`

	// ContextLimit overrides the model's context window (tokens); 0 uses
	// the model table.
	ContextLimit int `json:"context_limit,omitempty"`
	// ReserveOutput is the room kept for the answer when an item sets no
	// max_tokens.
	ReserveOutput int `json:"reserve_output,omitempty"`
	// OnOverflow is "truncate" (default) or "fail".
	OnOverflow string `json:"on_overflow,omitempty"`
	// Models overrides the built-in model table (context, output, prices).
	Models models.Table `json:"models,omitempty"`
	// BudgetUSD and BudgetTokens cap what the job may spend (0 = none):
	// reaching one pauses the job.
	BudgetUSD    float64 `json:"budget_usd,omitempty"`
	BudgetTokens int64   `json:"budget_tokens,omitempty"`
}

// Spend is what a job has spent so far.
type Spend struct {
	TokensIn, TokensOut int64
	CostMicros          int64 // estimated, in millionths of a dollar
}

// CostUSD is the estimated cost in dollars.
func (s Spend) CostUSD() float64 { return float64(s.CostMicros) / 1e6 }

// OverBudget says which budget of p the spend has reached, or "".
func (p Policy) OverBudget(s Spend) string {
	switch {
	case p.BudgetTokens > 0 && s.TokensIn+s.TokensOut >= p.BudgetTokens:
		return fmt.Sprintf("token budget reached: %d of %d tokens used", s.TokensIn+s.TokensOut, p.BudgetTokens)
	case p.BudgetUSD > 0 && s.CostUSD() >= p.BudgetUSD:
		return fmt.Sprintf("cost budget reached: $%.4f of $%.4f spent (estimated)", s.CostUSD(), p.BudgetUSD)
	}
	return ""
}

// ModelUsage is one model's share of a job's usage.
type ModelUsage struct {
	Items     int64   `json:"items"`
	TokensIn  int64   `json:"tokens_in"`
	TokensOut int64   `json:"tokens_out"`
	CostUSD   float64 `json:"cost_usd"`
}

// Job is a consistent snapshot of a job's metadata and counters.
type Job struct {
	Name          string
	State         State
	Policy        Policy
	Fields        []string
	Total         int64
	Done          int64
	Failed        int64
	Active        int64
	AwaitingInput int64
	Rejected      int64
	ProviderCalls int64
	TokensIn      int64
	TokensOut     int64
	Duplicates    int64
	CreatedAt     time.Time
	StartedAt     time.Time
	FinishedAt    time.Time
	// Endpoint is the breaker endpoint the job's calls go through, once a
	// worker has made one.
	Endpoint string
	// CostMicros is the estimated cost so far, in millionths of a dollar.
	CostMicros int64
	// PausedReason says why a paused job is paused.
	PausedReason string
	// SubmittingUntil is set while a producer is still recording items.
	SubmittingUntil time.Time
	// Models is the usage per model.
	Models map[string]ModelUsage
}

// Spend returns what the job has spent.
func (j Job) Spend() Spend {
	return Spend{TokensIn: j.TokensIn, TokensOut: j.TokensOut, CostMicros: j.CostMicros}
}

// Pending is the number of items queued, waiting for a retry, a breaker or
// the limiter.
func (j Job) Pending() int64 {
	return j.Total - j.Done - j.Failed - j.Active - j.AwaitingInput
}

// Finished reports whether every item is done or failed.
func (j Job) Finished() bool { return j.Total > 0 && j.Done+j.Failed >= j.Total }

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

// Store reads and writes checkpoints.
type Store struct {
	rdb redis.UniversalClient
	now func() time.Time
}

// New returns a Store on rdb.
func New(rdb redis.UniversalClient) *Store {
	return &Store{rdb: rdb, now: time.Now}
}

// WithClock returns a copy of s that reads time from now (tests).
func (s *Store) WithClock(now func() time.Time) *Store {
	c := *s
	c.now = now
	return &c
}

const jobsKey = "llmfleet:jobs"

// keys returns the job's keys in the order the Lua scripts expect.
func keys(job string) []string {
	p := "llmfleet:{" + job + "}:"
	return []string{p + "job", p + "input", p + "status", p + "order", p + "calls", p + "claim", p + "result", p + "failure", p + "lasterr"}
}

const (
	kJob = iota
	kInput
	kStatus
	kOrder
	kCalls
	kClaim
	kResult
	kFailure
	kLastErr
)

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(s string) time.Time {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n == 0 {
		return time.Time{}
	}
	return time.UnixMilli(n).UTC()
}

// Open returns the job, creating it with policy p when it does not exist.
// created reports whether it was created by this call.
func (s *Store) Open(ctx context.Context, name string, p Policy) (job Job, created bool, err error) {
	if err := ValidateJobName(name); err != nil {
		return Job{}, false, err
	}
	pj, err := json.Marshal(p)
	if err != nil {
		return Job{}, false, fmt.Errorf("open job %q: %w", name, err)
	}
	k := keys(name)
	res, err := openScript.Run(ctx, s.rdb, k, string(pj), ms(s.now()), ms(p.Deadline), int64(p.Retention/time.Second)).Int()
	if err != nil {
		return Job{}, false, fmt.Errorf("open job %q: %w", name, err)
	}
	if err := s.rdb.SAdd(ctx, jobsKey, name).Err(); err != nil {
		return Job{}, false, fmt.Errorf("open job %q: register: %w", name, err)
	}
	job, err = s.Job(ctx, name)
	return job, res == 1, err
}

// UpdatePolicy replaces a job's policy. The caller has checked that only the
// fields that may change (deadline, budgets) differ. A job that expired and
// gets a deadline in the future runs again.
func (s *Store) UpdatePolicy(ctx context.Context, name string, p Policy) error {
	pj, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("update policy of job %q: %w", name, err)
	}
	err = updatePolicyScript.Run(ctx, s.rdb, keys(name), string(pj), ms(p.Deadline), int64(p.Retention/time.Second), ms(s.now())).Err()
	if err != nil {
		return fmt.Errorf("update policy of job %q: %w", name, err)
	}
	return nil
}

// Job returns a consistent snapshot of the job (one HGETALL).
func (s *Store) Job(ctx context.Context, name string) (Job, error) {
	m, err := s.rdb.HGetAll(ctx, keys(name)[kJob]).Result()
	if err != nil {
		return Job{}, fmt.Errorf("load job %q: %w", name, err)
	}
	if len(m) == 0 {
		return Job{}, fmt.Errorf("load job %q: %w", name, ErrJobNotFound)
	}
	return parseJob(name, m, s.now())
}

func parseJob(name string, m map[string]string, now time.Time) (Job, error) {
	j := Job{Name: name, State: State(m["state"])}
	if err := json.Unmarshal([]byte(m["policy"]), &j.Policy); err != nil {
		return Job{}, fmt.Errorf("load job %q: decode policy: %w", name, err)
	}
	if f := m["fields"]; f != "" {
		if err := json.Unmarshal([]byte(f), &j.Fields); err != nil {
			return Job{}, fmt.Errorf("load job %q: decode fields: %w", name, err)
		}
	}
	n := func(k string) int64 { v, _ := strconv.ParseInt(m[k], 10, 64); return v }
	j.Total, j.Done, j.Failed, j.Active = n("total"), n("done"), n("failed"), n("active")
	j.AwaitingInput, j.Rejected, j.ProviderCalls = n("awaiting_input"), n("rejected"), n("provider_calls")
	j.TokensIn, j.TokensOut, j.Duplicates = n("tokens_in"), n("tokens_out"), n("duplicates")
	j.CreatedAt, j.StartedAt, j.FinishedAt = fromMS(m["created_at"]), fromMS(m["started_at"]), fromMS(m["finished_at"])
	j.Endpoint = m[EndpointField]
	j.CostMicros = n("cost_micros")
	j.PausedReason = m["paused_reason"]
	for k, v := range m {
		rest, ok := strings.CutPrefix(k, "model:")
		if !ok {
			continue
		}
		i := strings.LastIndexByte(rest, ':')
		if i < 0 {
			continue
		}
		name, field := rest[:i], rest[i+1:]
		if j.Models == nil {
			j.Models = map[string]ModelUsage{}
		}
		u := j.Models[name]
		x, _ := strconv.ParseInt(v, 10, 64)
		switch field {
		case "items":
			u.Items = x
		case "in":
			u.TokensIn = x
		case "out":
			u.TokensOut = x
		case "cost":
			u.CostUSD = float64(x) / 1e6
		}
		j.Models[name] = u
	}
	j.SubmittingUntil = fromMS(m["submitting_until"])
	if (j.State == StateRunning || j.State == StatePaused) && !j.Policy.Deadline.IsZero() && !now.Before(j.Policy.Deadline) && !j.Finished() {
		j.State = StateExpired
	}
	return j, nil
}

// Jobs returns every job still in Redis, forgetting names whose data expired.
func (s *Store) Jobs(ctx context.Context) ([]Job, error) {
	names, err := s.rdb.SMembers(ctx, jobsKey).Result()
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	cmds := make([]*redis.MapStringStringCmd, len(names))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, n := range names {
			cmds[i] = p.HGetAll(ctx, keys(n)[kJob])
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	var jobs []Job
	var gone []any
	for i, n := range names {
		m := cmds[i].Val()
		if len(m) == 0 {
			gone = append(gone, n)
			continue
		}
		j, err := parseJob(n, m, s.now())
		if err != nil {
			// One damaged job must not hide the others.
			j = Job{Name: n, State: State("damaged: " + err.Error())}
		}
		jobs = append(jobs, j)
	}
	if len(gone) > 0 {
		if err := s.rdb.SRem(ctx, jobsKey, gone...).Err(); err != nil {
			return nil, fmt.Errorf("list jobs: forget expired: %w", err)
		}
	}
	return jobs, nil
}

// MergeFields adds field names to the job's list (kept in first-seen order),
// the columns of the failed-items CSV.
func (s *Store) MergeFields(ctx context.Context, name string, fields []string) error {
	j, err := s.Job(ctx, name)
	if err != nil {
		return err
	}
	seen := make(map[string]bool, len(j.Fields))
	for _, f := range j.Fields {
		seen[f] = true
	}
	out := j.Fields
	for _, f := range fields {
		if !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	if len(out) == len(j.Fields) {
		return nil
	}
	b, _ := json.Marshal(out)
	if err := s.rdb.HSet(ctx, keys(name)[kJob], "fields", string(b)).Err(); err != nil {
		return fmt.Errorf("merge fields of job %q: %w", name, err)
	}
	return nil
}

// SetRejected records how many input lines the last run rejected.
func (s *Store) SetRejected(ctx context.Context, name string, n int) error {
	if err := s.rdb.HSet(ctx, keys(name)[kJob], "rejected", n).Err(); err != nil {
		return fmt.Errorf("record rejected lines of job %q: %w", name, err)
	}
	return nil
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

// Sweep fails every pending item of the job with f (an expired deadline or
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
			if kv[i+1] == string(ItemPending) {
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

// Delete removes every key of the job.
func (s *Store) Delete(ctx context.Context, name string) error {
	if err := s.rdb.Del(ctx, keys(name)...).Err(); err != nil {
		return fmt.Errorf("delete job %q: %w", name, err)
	}
	if err := s.rdb.SRem(ctx, jobsKey, name).Err(); err != nil {
		return fmt.Errorf("delete job %q: %w", name, err)
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

// NoteEndpoint records the breaker endpoint a job's calls go through.
func (s *Store) NoteEndpoint(ctx context.Context, name, endpoint string) error {
	if err := noteEndpointScript.Run(ctx, s.rdb, keys(name), endpoint).Err(); err != nil {
		return fmt.Errorf("note endpoint of job %q: %w", name, err)
	}
	return nil
}

// Client returns the Redis client the store uses (status reads the breaker
// through it).
func (s *Store) Client() redis.UniversalClient { return s.rdb }

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

// Pause marks a running job paused with a reason (a budget reached). It
// reports whether this call paused it.
func (s *Store) Pause(ctx context.Context, name, reason string) (bool, error) {
	n, err := pauseScript.Run(ctx, s.rdb, keys(name), reason).Int()
	if err != nil {
		return false, fmt.Errorf("pause job %q: %w", name, err)
	}
	return n == 1, nil
}

// Resume puts a paused job back to running. It reports whether it was
// paused.
func (s *Store) Resume(ctx context.Context, name string) (bool, error) {
	n, err := resumeScript.Run(ctx, s.rdb, keys(name)).Int()
	if err != nil {
		return false, fmt.Errorf("resume job %q: %w", name, err)
	}
	return n == 1, nil
}

// AddUsage counts the usage of a call whose answer was not kept (invalid
// output, filtered): it was paid, so budgets and totals include it.
func (s *Store) AddUsage(ctx context.Context, name, model string, in, out int, costUSD float64) error {
	if err := addUsageScript.Run(ctx, s.rdb, keys(name), model, in, out, int64(costUSD*1e6+0.5)).Err(); err != nil {
		return fmt.Errorf("add usage to job %q: %w", name, err)
	}
	return nil
}

// Submitting holds the job open while a producer records items, until the
// given time (refresh it while recording): workers that catch up with the
// first batches must not finish the job early.
func (s *Store) Submitting(ctx context.Context, name string, until time.Time) error {
	if err := submittingScript.Run(ctx, s.rdb, keys(name), ms(until), ms(s.now())).Err(); err != nil {
		return fmt.Errorf("hold job %q open: %w", name, err)
	}
	return nil
}

// Seal ends a submission (or notices one whose producer died) and finishes
// the job if every item is done or failed.
func (s *Store) Seal(ctx context.Context, name string) error {
	if err := submittingScript.Run(ctx, s.rdb, keys(name), 0, ms(s.now())).Err(); err != nil {
		return fmt.Errorf("seal job %q: %w", name, err)
	}
	return nil
}
