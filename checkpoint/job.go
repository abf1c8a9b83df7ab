package checkpoint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
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
	// ModelSteps and ToolRuns count agent items' committed model answers
	// and tool runs.
	ModelSteps, ToolRuns int64
	TokensIn             int64
	TokensOut            int64
	Duplicates           int64
	CreatedAt            time.Time
	StartedAt            time.Time
	FinishedAt           time.Time
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

// Store reads and writes checkpoints.
type Store struct {
	rdb      redis.UniversalClient
	now      func() time.Time
	policies *policyCache
	batch    *batching
	linger   time.Duration
}

// batching coalesces the worker's two per-item transitions, Begin and
// Commit, across concurrent attempts of a job.
type batching struct {
	begins  *coalescers[claimReq, Claimed]
	commits *coalescers[commitReq, Committed]
}

// New returns a Store on rdb.
func New(rdb redis.UniversalClient) *Store {
	s := &Store{rdb: rdb, now: time.Now, policies: &policyCache{}}
	s.batch = s.newBatching()
	return s
}

func (s *Store) newBatching() *batching {
	return &batching{
		begins: &coalescers[claimReq, Claimed]{max: maxBatch, linger: s.linger, run: func(ctx context.Context, job string, reqs []claimReq) ([]Claimed, error) {
			return s.claim(ctx, job, "", true, reqs)
		}},
		commits: &coalescers[commitReq, Committed]{max: maxBatch, linger: s.linger, run: s.commit},
	}
}

// policyCache keeps the last decoded policy of each job a worker claims
// items of: every claim returns the stored policy, which changes rarely
// (a new deadline or budget), and decoding it per item costs more than the
// comparison.
type policyCache struct{ m sync.Map } // job name → cachedPolicy

type cachedPolicy struct {
	raw string
	pol Policy
}

func (c *policyCache) decode(job, raw string) (Policy, error) {
	if v, ok := c.m.Load(job); ok && v.(cachedPolicy).raw == raw {
		return v.(cachedPolicy).pol, nil
	}
	var p Policy
	if err := json.Unmarshal([]byte(raw), &p); err != nil {
		return Policy{}, err
	}
	c.m.Store(job, cachedPolicy{raw: raw, pol: p})
	return p, nil
}

// DefaultLinger is how long, at most, a worker's Begin or Commit waits to
// share a script run with others of the same job when they come fast (see
// coalescer).
const DefaultLinger = 2 * time.Millisecond

// WithLinger returns a copy of s whose Begin and Commit wait up to d for
// company when a job's requests come fast (0: never wait; concurrent
// requests still share runs).
func (s *Store) WithLinger(d time.Duration) *Store {
	c := *s
	c.linger = d
	c.batch = c.newBatching()
	return &c
}

// WithClock returns a copy of s that reads time from now (tests).
func (s *Store) WithClock(now func() time.Time) *Store {
	c := *s
	c.now = now
	c.batch = c.newBatching()
	return &c
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
	res, err := openScript.Run(ctx, s.rdb, k, string(pj), ms(s.now()), ms(p.Deadline), int64(p.Retention/time.Second), p.MaxAttempts).Int()
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
	err = updatePolicyScript.Run(ctx, s.rdb, keys(name), string(pj), ms(p.Deadline), int64(p.Retention/time.Second), ms(s.now()), p.MaxAttempts).Err()
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
	j.ModelSteps, j.ToolRuns = n("model_steps"), n("tool_runs")
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
