package jobs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/hibiken/asynq"

	"github.com/llmfleet/llmfleet/checkpoint"
	"github.com/llmfleet/llmfleet/input"
	"github.com/llmfleet/llmfleet/tasks"
)

// FailedItem is one failed item as `producer failed` lists it.
type FailedItem struct {
	ID       string `json:"id"`
	Class    string `json:"class"`
	Reason   string `json:"reason"`
	Attempts int    `json:"attempts"`
	Status   int    `json:"status,omitempty"`
	// FirstFailed and LastFailed bound the item's failures.
	FirstFailed *time.Time `json:"first_failed_at,omitempty"`
	LastFailed  *time.Time `json:"last_failed_at,omitempty"`
}

// WalkFailed calls fn for every failed item of the job in input order,
// keeping only class when it is not empty. It streams.
func WalkFailed(ctx context.Context, store *checkpoint.Store, job, class string, fn func(FailedItem) error) error {
	if _, err := store.Job(ctx, job); err != nil {
		return err
	}
	return store.Walk(ctx, job, checkpoint.Want{Failure: true, Status: []checkpoint.ItemStatus{checkpoint.ItemFailed}}, func(vs []checkpoint.View) error {
		for _, v := range vs {
			fi := FailedItem{ID: v.ID}
			if f := v.Failure; f != nil {
				fi.Class, fi.Reason, fi.Attempts, fi.Status = f.Class, f.Reason, f.Attempts, f.Status
				fi.FirstFailed, fi.LastFailed = timePtr(f.FirstFailed), timePtr(f.LastFailed)
			}
			if class != "" && fi.Class != class {
				continue
			}
			if err := fn(fi); err != nil {
				return err
			}
		}
		return nil
	})
}

// ReplayOptions choose the failed items to put back to work.
type ReplayOptions struct {
	Job string
	// Items, Class or All select the items (exactly one of them).
	Items []string
	Class string
	All   bool
	// Edit, when set, replaces the stored input of the items it holds (same
	// ids) before they are replayed; only those items are replayed.
	Edit     io.Reader
	EditName string
	// Deadline, when not zero, replaces the job's deadline (a replay of an
	// expired job needs one).
	Deadline time.Time
	// Concurrency bounds the asynq round trips at once. Default 16.
	Concurrency int
}

// ReplaySummary is what a replay did.
type ReplaySummary struct {
	Job string `json:"job"`
	// Replayed items went from failed back to pending with a fresh budget.
	Replayed int `json:"replayed"`
	// FromArchive were run from asynq's archive; Reenqueued had been dropped
	// by asynq (or never archived) and were enqueued from the stored input;
	// AlreadyQueued still had a live task.
	FromArchive   int `json:"from_archive"`
	Reenqueued    int `json:"reenqueued"`
	AlreadyQueued int `json:"already_queued"`
	Edited        int `json:"edited"`
	// Skipped lists the chosen items that were not failed (replaying twice
	// is a no-op), with their status.
	Skipped []SkippedItem `json:"skipped"`
}

// SkippedItem is an item a replay left alone.
type SkippedItem struct {
	ID     string `json:"id"`
	Reason string `json:"reason"`
}

// Replay puts failed items back to work. The checkpoint is updated first
// (failed → pending, a fresh attempt budget, counts moved), then each item's
// task is run from asynq's archive when it is still there, or enqueued again
// from the stored input when asynq has dropped it. Both steps are
// idempotent: a second replay finds nothing failed.
func Replay(ctx context.Context, d Deps, o ReplayOptions) (ReplaySummary, error) {
	sum := ReplaySummary{Job: o.Job, Skipped: []SkippedItem{}}
	n := 0
	if len(o.Items) > 0 {
		n++
	}
	if o.Class != "" {
		n++
	}
	if o.All {
		n++
	}
	if o.Edit != nil && n == 0 {
		n = 1 // the edit file names the items
	}
	if n != 1 {
		return sum, &UsageError{Msg: "replay needs exactly one of --item, --class, --all (or --edit FILE alone)"}
	}
	job, err := d.Store.Job(ctx, o.Job)
	if err != nil {
		return sum, err
	}
	pol := job.Policy
	if !o.Deadline.IsZero() {
		pol.Deadline = o.Deadline
		if err := d.Store.UpdatePolicy(ctx, o.Job, pol); err != nil {
			return sum, err
		}
	} else if !pol.Deadline.IsZero() && time.Now().After(pol.Deadline) {
		return sum, &UsageError{Msg: fmt.Sprintf("job %q's deadline %s has passed: give a new one with --deadline-in or --deadline", o.Job, pol.Deadline.Format(time.RFC3339))}
	}

	var edited []string
	if o.Edit != nil {
		edited, err = applyEdits(ctx, d.Store, o, pol, &sum)
		if err != nil {
			return sum, err
		}
		sum.Edited = len(edited)
	}

	rq := newRequeuer(ctx, d, o.Job, pol, o.Concurrency)
	process := func(ids []string) error {
		res, err := d.Store.Replay(ctx, o.Job, ids)
		if err != nil {
			return err
		}
		for _, r := range res {
			switch r.Outcome {
			case checkpoint.Replayed:
				sum.Replayed++
				rq.add(r.ID)
			case checkpoint.ReplayNotFailed:
				sum.Skipped = append(sum.Skipped, SkippedItem{ID: r.ID, Reason: fmt.Sprintf("not failed (it is %s): nothing to replay", r.Status)})
			case checkpoint.ReplayUnknown:
				sum.Skipped = append(sum.Skipped, SkippedItem{ID: r.ID, Reason: "no such item in the job"})
			}
		}
		return nil
	}
	switch {
	case len(o.Items) > 0 || (o.Edit != nil && !o.All && o.Class == ""):
		ids := o.Items
		if o.Edit != nil {
			ids = edited
		}
		err = process(slices.Compact(ids))
	default:
		// Chosen by class or all: stream the failed items in batches.
		var batch []string
		err = WalkFailed(ctx, d.Store, o.Job, o.Class, func(fi FailedItem) error {
			batch = append(batch, fi.ID)
			if len(batch) == 1000 {
				err := process(batch)
				batch = nil
				return err
			}
			return nil
		})
		if err == nil && len(batch) > 0 {
			err = process(batch)
		}
	}
	fromArchive, reenqueued, already, rqErr := rq.close()
	sum.FromArchive, sum.Reenqueued, sum.AlreadyQueued = fromArchive, reenqueued, already
	if err != nil {
		return sum, err
	}
	return sum, rqErr
}

// applyEdits replaces the stored input of the items in the edit file and
// returns their ids.
func applyEdits(ctx context.Context, store *checkpoint.Store, o ReplayOptions, pol checkpoint.Policy, sum *ReplaySummary) ([]string, error) {
	r, err := input.NewReader(o.Edit, o.EditName, input.Options{
		Template: pol.Template, System: pol.System, JSONOutput: pol.JSONOutput,
	})
	if err != nil {
		return nil, &UsageError{Msg: "--edit: " + err.Error()}
	}
	var ids []string
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("--edit %s: %w", o.EditName, err)
		}
		st, err := store.ReplaceInput(ctx, o.Job, checkpoint.Entry{ID: rec.Item.ID, Canonical: rec.Item.Canonical()})
		switch {
		case errors.Is(err, checkpoint.ErrItemNotFound):
			sum.Skipped = append(sum.Skipped, SkippedItem{ID: rec.Item.ID, Reason: fmt.Sprintf("line %d: no item with this id in the job", rec.Line)})
			continue
		case errors.Is(err, checkpoint.ErrNotEditable):
			sum.Skipped = append(sum.Skipped, SkippedItem{ID: rec.Item.ID, Reason: fmt.Sprintf("line %d: it is %s, only failed or pending items can be edited", rec.Line, st)})
			continue
		case err != nil:
			return nil, err
		}
		ids = append(ids, rec.Item.ID)
	}
	if rej := r.Rejections(); len(rej) > 0 {
		return nil, &UsageError{Msg: fmt.Sprintf("--edit %s: line %d: %s (nothing replayed)", o.EditName, rej[0].Line, rej[0].Error)}
	}
	sort.Strings(ids)
	return ids, nil
}

// requeuer puts replayed items' tasks back in the queue, concurrently and
// bounded: run from the archive when there, else enqueue from scratch.
type requeuer struct {
	pool *pool[string]

	mu      sync.Mutex
	archive int
	enq     int
	already int
	err     error
}

func newRequeuer(ctx context.Context, d Deps, job string, pol checkpoint.Policy, n int) *requeuer {
	r := &requeuer{}
	opts := TaskOptions(pol)
	r.pool = newPool(ctx, n, func(id string) error {
		kind, err := ensureTask(ctx, d, job, id, pol.Queue, opts, false)
		r.mu.Lock()
		defer r.mu.Unlock()
		switch {
		case err != nil:
			// Kept here rather than handed to the pool, which would stop at
			// it: every replayed item is already pending in the checkpoint
			// and needs its task, so a failure of one must not leave the
			// others without theirs.
			if r.err == nil {
				r.err = fmt.Errorf("requeue item %q: %w", id, err)
			}
		case kind == "archive":
			r.archive++
		case kind == "enqueued":
			r.enq++
		default:
			r.already++
		}
		return nil
	})
	return r
}

// add queues id's task for requeuing. Only the end of ctx stops the
// requeuer, and close reports it, so add has no error of its own to return.
func (r *requeuer) add(id string) { _ = r.pool.add(id) }

func (r *requeuer) close() (fromArchive, enqueued, already int, err error) {
	err = r.pool.close()
	if r.err != nil {
		err = r.err
	}
	return r.archive, r.enq, r.already, err
}

// activeWait bounds how long ensureTask waits for a running task to end.
const activeWait = 2 * time.Minute

// ensureTask makes sure a pending item has a task that will run: it runs
// the task from asynq's archive when it is there (a fresh one when asynq's
// retry count of the archived one is half spent), enqueues it again when
// asynq has dropped it, and leaves a live task alone. A task still running
// may be on its way to the archive (its worker failing the item just as it
// was replayed), so ensureTask waits for it to leave the active state.
// With now, a task waiting in the retry or scheduled set is run at once
// (a parked item just answered), and a running one is waited for at most
// wakeWait (its worker is only parking it). It returns "archive",
// "enqueued", "queued" or "run".
func ensureTask(ctx context.Context, d Deps, job, id, queue string, opts []asynq.Option, now bool) (string, error) {
	tid := tasks.TaskID(job, id)
	wait := activeWait
	if now {
		wait = wakeWait
	}
	deadline := time.Now().Add(wait)
	for {
		info, err := d.Inspector.GetTaskInfo(queue, tid)
		switch {
		case err == nil && info.State == asynq.TaskStateActive && time.Now().Before(deadline):
			if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
				return "", err
			}
			continue
		case err == nil && now && (info.State == asynq.TaskStateRetry || info.State == asynq.TaskStateScheduled):
			err := d.Inspector.RunTask(queue, tid)
			if err == nil {
				return "run", nil
			}
			if !errors.Is(err, asynq.ErrTaskNotFound) {
				return "", err
			}
			continue // it moved meanwhile: look again
		case err == nil && info.State == asynq.TaskStateArchived:
			if info.Retried < info.MaxRetry/2 {
				err := d.Inspector.RunTask(queue, tid)
				if err == nil {
					return "archive", nil
				}
				if !errors.Is(err, asynq.ErrTaskNotFound) {
					return "", err
				}
			} else if err := d.Inspector.DeleteTask(queue, tid); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
				return "", err
			}
		case err == nil:
			// Pending, scheduled or retry: a live task will run it.
			return "queued", nil
		case !errors.Is(err, asynq.ErrTaskNotFound) && !errors.Is(err, asynq.ErrQueueNotFound):
			return "", err
		}
		// asynq dropped it (archive cap, retention) or never archived it.
		t, err := tasks.NewItemTask(job, id, opts...)
		if err != nil {
			return "", err
		}
		_, err = d.Client.EnqueueContext(ctx, t)
		switch {
		case errors.Is(err, asynq.ErrTaskIDConflict):
			continue // it came back meanwhile: look again
		case err != nil:
			return "", err
		}
		return "enqueued", nil
	}
}
