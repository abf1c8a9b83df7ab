package jobs

import (
	"context"
	"errors"
	"fmt"
	"github.com/llmfleet/llmfleet/agent"
	"io"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"

	"github.com/llmfleet/llmfleet/checkpoint"
	"github.com/llmfleet/llmfleet/input"
	"github.com/llmfleet/llmfleet/tasks"
)

// UsageError is a problem with the command line: exit code 2.
type UsageError struct {
	Msg string
	// Err, when set, is the error Msg reports (a *checkpoint.PolicyError),
	// kept so that errors.As still finds it.
	Err error
}

func (e *UsageError) Error() string { return e.Msg }

func (e *UsageError) Unwrap() error { return e.Err }

// ErrNothingEnqueued marks a run that enqueued nothing because of its input
// (empty, every line rejected, --strict with bad lines): exit code 1.
var ErrNothingEnqueued = errors.New("nothing enqueued")

// SubmitOptions is one `producer run`.
type SubmitOptions struct {
	Job       string
	Input     io.Reader
	InputName string
	Format    input.Format
	// Policy is the policy asked for, defaults filled in.
	Policy checkpoint.Policy
	// Changed reports whether the user set a flag explicitly. On a rerun only
	// explicitly set flags are compared with the stored policy. Nil means
	// every flag was set.
	Changed      func(flag string) bool
	MaxItemBytes int
	Strict       bool
	// Concurrency is how many enqueue round trips run at once. Default 16.
	Concurrency int
	// Prior holds results of an earlier run (id → result line), recorded as
	// done instead of enqueued: how the embedded mode resumes from its
	// results file.
	Prior map[string][]byte
	// Parked holds items an earlier run parked for a person, with their
	// steps and requests (the embedded mode's NAME.awaiting.jsonl): they
	// are recorded parked instead of enqueued, and resume where they were.
	Parked map[string]Parked
}

// Parked is what a parked item needs to resume in another process.
type Parked struct {
	Steps    []checkpoint.Step
	Requests []agent.Request
}

// Summary is what `run` prints (run --json).
type Summary struct {
	Job           string `json:"job"`
	Total         int    `json:"total"`
	Enqueued      int    `json:"enqueued"`
	SkippedDone   int    `json:"skipped_done"`
	SkippedFailed int    `json:"skipped_failed"`
	AlreadyQueued int    `json:"already_queued"`
	// AwaitingInput are items parked for a person (answer them with
	// --responses, respond, or the inbox).
	AwaitingInput       int               `json:"awaiting_input"`
	DuplicatesCollapsed int               `json:"duplicates_collapsed"`
	Rejected            int               `json:"rejected"`
	RejectedLines       []input.Rejection `json:"rejected_lines"`
	Created             bool              `json:"created"`
	// Responses is what run --responses did.
	Responses *RespondSummary `json:"responses,omitempty"`
}

// Deps are the connections a command needs.
type Deps struct {
	Store  *checkpoint.Store
	Client *asynq.Client
	// Inspector is needed by Delete only.
	Inspector *asynq.Inspector
}

// recordBatch is how many items are recorded per checkpoint round trip.
const recordBatch = 500

// submitHold is how long a submission holds its job open without a
// refresh: a producer that dies mid-file releases it after this.
const submitHold = 30 * time.Second

// Submit records the input's items in the job (creating it, or checking the
// flags against its stored policy) and enqueues what is not done, failed or
// already queued. Items are recorded before they are enqueued, so a crash of
// the producer loses nothing; the next run enqueues what is missing.
func Submit(ctx context.Context, d Deps, o SubmitOptions) (sum Summary, err error) {
	sum = Summary{Job: o.Job, RejectedLines: []input.Rejection{}}
	if err := checkpoint.ValidateJobName(o.Job); err != nil {
		return sum, &UsageError{Msg: "--job: " + err.Error()}
	}
	if err := o.Policy.Validate(); err != nil {
		return sum, &UsageError{Msg: err.Error(), Err: err}
	}
	// Check the input options before the job exists: a bad --template must
	// not leave a job whose stored policy holds it.
	if _, err := input.NewReader(strings.NewReader(""), o.InputName, input.Options{
		Format: o.Format, Template: o.Policy.Template, System: o.Policy.System,
		JSONOutput: o.Policy.JSONOutput, Schema: o.Policy.Schema, Endpoint: o.Policy.Endpoint, MaxItemBytes: o.MaxItemBytes, Tools: agent.Names(o.Policy.Tools),
	}); err != nil {
		return sum, &UsageError{Msg: err.Error()}
	}
	job, created, err := d.Store.Open(ctx, o.Job, o.Policy)
	if err != nil {
		return sum, err
	}
	sum.Created = created
	if created {
		// A first run that records nothing (empty file, every line bad,
		// --strict) leaves no job behind, so fixing the file and the flags
		// starts afresh.
		defer func() {
			if j, err := d.Store.Job(context.WithoutCancel(ctx), o.Job); err == nil && j.Total == 0 {
				_ = d.Store.Delete(context.WithoutCancel(ctx), o.Job)
				sum.Created = false
			}
		}()
	}
	pol := job.Policy
	if !created {
		if job.State == checkpoint.StateCancelled {
			return sum, fmt.Errorf("job %q was cancelled: delete it (producer delete --job %s) or use another name", o.Job, o.Job)
		}
		merged, err := mergePolicy(job.Policy, o.Policy, o.Changed)
		if err != nil {
			return sum, err
		}
		if !reflect.DeepEqual(merged, job.Policy) {
			if err := d.Store.UpdatePolicy(ctx, o.Job, merged); err != nil {
				return sum, err
			}
			if job.State == checkpoint.StatePaused {
				if _, err := resumeIfAllowed(ctx, d, o.Job); err != nil {
					return sum, err
				}
			}
		}
		pol = merged
	}
	opts := input.Options{
		Format: o.Format, Template: pol.Template, System: pol.System,
		JSONOutput: pol.JSONOutput, Schema: pol.Schema, Endpoint: pol.Endpoint, MaxItemBytes: o.MaxItemBytes, Tools: agent.Names(pol.Tools),
	}
	src := o.Input
	if o.Strict {
		// --strict: nothing is recorded unless every line is good, so the
		// input is read twice; a stream is kept in a temporary file.
		rs, cleanup, err := rewindable(src)
		if err != nil {
			return sum, err
		}
		defer cleanup()
		bad, err := check(ctx, d.Store, o.Job, rs, o.InputName, opts)
		if err != nil {
			return sum, err
		}
		if len(bad) > 0 {
			sum.Rejected, sum.RejectedLines = len(bad), bad
			return sum, fmt.Errorf("--strict: %d bad line(s), nothing recorded: %w", len(bad), ErrNothingEnqueued)
		}
		if _, err := rs.Seek(0, io.SeekStart); err != nil {
			return sum, fmt.Errorf("rewind input: %w", err)
		}
		src = rs
	}
	r, err := input.NewReader(src, o.InputName, opts)
	if err != nil {
		return sum, &UsageError{Msg: err.Error()}
	}

	// Hold the job open while recording: workers that catch up with the
	// first batches must not finish it early.
	if err := d.Store.Submitting(ctx, o.Job, time.Now().Add(submitHold)); err != nil {
		return sum, err
	}
	holdCtx, stopHold := context.WithCancel(ctx)
	var holdWG sync.WaitGroup
	holdWG.Go(func() {
		t := time.NewTicker(submitHold / 3)
		defer t.Stop()
		for {
			select {
			case <-holdCtx.Done():
				return
			case <-t.C:
				_ = d.Store.Submitting(holdCtx, o.Job, time.Now().Add(submitHold))
			}
		}
	})
	defer func() {
		stopHold()
		holdWG.Wait()
		_ = d.Store.Seal(context.WithoutCancel(ctx), o.Job)
	}()

	enq := newEnqueuer(ctx, d, pol, o.Job, o.Concurrency)
	var conflicts []input.Rejection
	batch := make([]input.Record, 0, recordBatch)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		defer func() { batch = batch[:0] }()
		entries := make([]checkpoint.Entry, 0, len(batch))
		var prior []checkpoint.Entry
		var priorResults [][]byte
		for i := range batch {
			e := checkpoint.Entry{ID: batch[i].Item.ID, Canonical: batch[i].Item.Canonical()}
			if res, ok := o.Prior[e.ID]; ok {
				prior = append(prior, e)
				priorResults = append(priorResults, res)
				continue
			}
			entries = append(entries, e)
		}
		if len(prior) > 0 {
			if err := d.Store.RecordDone(ctx, o.Job, prior, priorResults); err != nil {
				return err
			}
			sum.SkippedDone += len(prior)
		}
		out, err := d.Store.Record(ctx, o.Job, entries)
		if err != nil {
			return err
		}
		j := 0
		for i := range batch {
			if _, ok := o.Prior[batch[i].Item.ID]; ok {
				continue
			}
			switch out[j] {
			case checkpoint.RecordedNew, checkpoint.RecordedPending:
				if p, ok := o.Parked[entries[j].ID]; ok {
					restored, err := d.Store.RestoreParked(ctx, o.Job, entries[j].ID, p.Steps, p.Requests)
					if err != nil {
						return err
					}
					if restored == checkpoint.RestoredParked {
						// Its task parks it again at once, with the wake
						// time its input timeout and the deadline set.
						sum.AwaitingInput++
					}
				}
				enq.add(entries[j].ID)
			case checkpoint.RecordedActive:
				sum.AlreadyQueued++
			case checkpoint.RecordedAwaiting:
				sum.AwaitingInput++
			case checkpoint.RecordedDone:
				sum.SkippedDone++
			case checkpoint.RecordedFailed:
				sum.SkippedFailed++
			case checkpoint.RecordedConflict:
				conflicts = append(conflicts, input.Rejection{Line: batch[i].Line, Error: fmt.Sprintf(
					"id %q is already in job %q with different content; to change a stored item use `producer replay --job %s --edit FILE`",
					entries[j].ID, o.Job, o.Job)})
			}
			j++
		}
		return nil
	}
	var readErr error
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			readErr = err
			break
		}
		batch = append(batch, rec)
		if len(batch) == recordBatch {
			if err := flush(); err != nil {
				enq.close()
				return sum, err
			}
		}
	}
	if readErr == nil {
		readErr = flush()
	}
	enqueued, already, enqErr := enq.close()
	sum.Enqueued, sum.AlreadyQueued = enqueued, sum.AlreadyQueued+already
	st := r.Stats()
	sum.DuplicatesCollapsed = st.DuplicatesCollapsed
	rej := append(r.Rejections(), conflicts...)
	sort.SliceStable(rej, func(a, b int) bool { return rej[a].Line < rej[b].Line })
	sum.Rejected, sum.RejectedLines = len(rej), rej
	if rej == nil {
		sum.RejectedLines = []input.Rejection{}
	}
	sum.Total = st.Accepted - len(conflicts)
	if readErr != nil {
		var fe *input.FileError
		switch {
		case errors.Is(readErr, input.ErrEmpty):
			return sum, fmt.Errorf("%s: %w: %w", o.InputName, readErr, ErrNothingEnqueued)
		case errors.As(readErr, &fe):
			return sum, fmt.Errorf("%s: %w: %w", o.InputName, readErr, ErrNothingEnqueued)
		}
		return sum, readErr
	}
	if enqErr != nil {
		return sum, enqErr
	}
	if err := d.Store.MergeFields(ctx, o.Job, r.Fields()); err != nil {
		return sum, err
	}
	if err := d.Store.SetRejected(ctx, o.Job, sum.Rejected); err != nil {
		return sum, err
	}
	if sum.Total == 0 && sum.Rejected > 0 {
		return sum, fmt.Errorf("every line was rejected: %w", ErrNothingEnqueued)
	}
	return sum, nil
}

// mergePolicy applies a rerun's flags to the stored policy: only the deadline
// and the budgets may change; any other flag set to a different value is a
// usage error that names it.
func mergePolicy(stored, asked checkpoint.Policy, changed func(string) bool) (checkpoint.Policy, error) {
	if changed == nil {
		changed = func(string) bool { return true }
	}
	out := stored
	fixed := []struct {
		flag     string
		differs  bool
		was, now any
	}{
		{"--model", stored.Model != asked.Model, stored.Model, asked.Model},
		{"--system", stored.System != asked.System, stored.System, asked.System},
		{"--template", stored.Template != asked.Template, stored.Template, asked.Template},
		{"--json-output", stored.JSONOutput != asked.JSONOutput, stored.JSONOutput, asked.JSONOutput},
		{"--queue", stored.Queue != asked.Queue, stored.Queue, asked.Queue},
		{"--backoff-min", stored.BackoffMin != asked.BackoffMin, stored.BackoffMin, asked.BackoffMin},
		{"--backoff-max", stored.BackoffMax != asked.BackoffMax, stored.BackoffMax, asked.BackoffMax},
		{"--timeout", stored.Timeout != asked.Timeout, stored.Timeout, asked.Timeout},
		{"--retention", stored.Retention != asked.Retention, stored.Retention, asked.Retention},
		{"--context-limit", stored.ContextLimit != asked.ContextLimit, stored.ContextLimit, asked.ContextLimit},
		{"--reserve-output", stored.ReserveOutput != asked.ReserveOutput, stored.ReserveOutput, asked.ReserveOutput},
		{"--on-overflow", stored.OnOverflow != asked.OnOverflow, stored.OnOverflow, asked.OnOverflow},
		{"--models", !reflect.DeepEqual(stored.Models, asked.Models), "(stored table)", "(file)"},
		{"--tools", !reflect.DeepEqual(stored.Tools, asked.Tools), toolNames(stored.Tools), toolNames(asked.Tools)},
		{"--schema", !reflect.DeepEqual(stored.Schema, asked.Schema), "(stored schema)", "(file)"},
		{"--endpoint", stored.Endpoint != asked.Endpoint, stored.Endpoint, asked.Endpoint},
		{"--embedding-model", stored.EmbeddingModel != asked.EmbeddingModel, stored.EmbeddingModel, asked.EmbeddingModel},
		{"--max-transcript-bytes", stored.MaxTranscriptBytes != asked.MaxTranscriptBytes, stored.MaxTranscriptBytes, asked.MaxTranscriptBytes},
		{"--on-input-timeout", stored.OnInputTimeout != asked.OnInputTimeout, stored.OnInputTimeout, asked.OnInputTimeout},
	}
	for _, f := range fixed {
		if f.differs && changed(f.flag) {
			return stored, &UsageError{Msg: fmt.Sprintf(
				"%s %v differs from the job's stored policy (%v); a rerun may change only --deadline, --deadline-in, --max-attempts, --max-steps, --input-timeout, --pack, --budget-usd and --budget-tokens",
				f.flag, f.now, f.was)}
		}
	}
	if changed("--max-attempts") {
		out.MaxAttempts = asked.MaxAttempts
	}
	if changed("--pack") {
		out.Pack = asked.Pack
	}
	if changed("--input-timeout") {
		out.InputTimeout = asked.InputTimeout
	}
	if changed("--max-steps") {
		out.MaxSteps = asked.MaxSteps
	}
	if changed("--budget-usd") {
		out.BudgetUSD = asked.BudgetUSD
	}
	if changed("--budget-tokens") {
		out.BudgetTokens = asked.BudgetTokens
	}
	if changed("--deadline") || changed("--deadline-in") {
		out.Deadline = asked.Deadline
	}
	return out, nil
}

// toolNames shows a tool set by its names.
func toolNames(tools []agent.Tool) string {
	if len(tools) == 0 {
		return "(none)"
	}
	return "[" + strings.Join(agent.Names(tools), ",") + "]"
}

// enqueuer enqueues item tasks with bounded concurrency: asynq enqueues one
// task per round trip, so parallel round trips are what makes 100k items
// quick.
type enqueuer struct {
	ctx      context.Context
	d        Deps
	queue    string
	job      string
	opts     []asynq.Option
	pool     *pool[string]
	enqueued atomic.Int64
	already  atomic.Int64
}

func newEnqueuer(ctx context.Context, d Deps, pol checkpoint.Policy, job string, n int) *enqueuer {
	e := &enqueuer{ctx: ctx, d: d, queue: pol.Queue, job: job, opts: TaskOptions(pol)}
	e.pool = newPool(ctx, n, e.enqueue)
	return e
}

// TaskOptions are the asynq options of a job's item tasks: a safety net
// only. The handler enforces the attempt timeout and budget itself.
func TaskOptions(pol checkpoint.Policy) []asynq.Option {
	retries := pol.MaxAttempts + 100
	// Room for two calls (a context-overflow retry) and the waits.
	timeout := 2*pol.Timeout + 5*time.Minute
	if pol.Agent() {
		// One task run carries an agent item through all its steps: room
		// for every model call and every tool's runs, and retries for the
		// failed calls of every step. asynq's timeout is a safety net only
		// (a run cut by it resumes at its last committed step).
		var tool time.Duration
		for _, t := range pol.Tools {
			tool = max(tool, time.Duration(t.Attempts())*(t.TimeoutOrDefault()+10*time.Second))
		}
		steps := time.Duration(pol.StepLimit())
		timeout = min(steps*(2*pol.Timeout+4*tool)+5*time.Minute, 24*time.Hour)
		retries = pol.MaxAttempts*pol.StepLimit() + 100
	}
	return []asynq.Option{
		asynq.Queue(pol.Queue),
		// The handler owns the attempt budget; asynq's count only guards
		// against a loop. A task run again from the archive keeps its count,
		// so the headroom allows many replays.
		asynq.MaxRetry(retries),
		asynq.Timeout(timeout),
	}
}

func (e *enqueuer) enqueue(id string) error {
	t, err := tasks.NewItemTask(e.job, id, e.opts...)
	if err == nil {
		_, err = e.d.Client.EnqueueContext(e.ctx, t)
	}
	switch {
	case err == nil:
		e.enqueued.Add(1)
	case errors.Is(err, asynq.ErrTaskIDConflict) && e.d.Inspector != nil:
		// The item is pending, yet its id is taken: by a live task, or by
		// an archived one (a replay that raced a failing worker), which
		// must run again.
		kind, err := ensureTask(e.ctx, e.d, e.job, id, e.queue, e.opts, false)
		switch {
		case err != nil:
			return fmt.Errorf("enqueue item %q: %w", id, err)
		case kind == "queued":
			e.already.Add(1)
		default:
			e.enqueued.Add(1)
		}
	case errors.Is(err, asynq.ErrTaskIDConflict):
		e.already.Add(1)
	default:
		return fmt.Errorf("enqueue item %q: %w", id, err)
	}
	return nil
}

// add queues id for enqueuing. After the first error ids are dropped, yet
// the caller goes on recording the input: close reports the error, and the
// next run enqueues every item recorded pending.
func (e *enqueuer) add(id string) { _ = e.pool.add(id) }

func (e *enqueuer) close() (enqueued, already int, err error) {
	err = e.pool.close()
	return int(e.enqueued.Load()), int(e.already.Load()), err
}
