package jobs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/hibiken/asynq"

	"github.com/llmfleet/llmfleet/checkpoint"
	"github.com/llmfleet/llmfleet/tasks"
)

// Cancel cancels a job: pending items end cancelled at once, active ones at
// their next check, and no further provider call is made for it.
func Cancel(ctx context.Context, store *checkpoint.Store, job string) (int, error) {
	return store.Cancel(ctx, job)
}

// Delete removes a job's queued tasks and then its state. Tasks that are
// running finish harmlessly: the handler drops tasks of unknown jobs.
func Delete(ctx context.Context, d Deps, job string) (int, error) {
	j, err := d.Store.Job(ctx, job)
	if err != nil {
		return 0, err
	}
	var deleted atomic.Int64
	err = forEachItem(ctx, d.Store, job, []checkpoint.ItemStatus{checkpoint.ItemPending, checkpoint.ItemActive, checkpoint.ItemFailed},
		func(id string) error {
			err := d.Inspector.DeleteTask(j.Policy.Queue, tasks.TaskID(job, id))
			switch {
			case err == nil:
				deleted.Add(1)
			case errors.Is(err, asynq.ErrTaskNotFound), errors.Is(err, asynq.ErrQueueNotFound):
			case isActiveErr(err):
				// Active tasks cannot be deleted; they end on their own.
			default:
				return fmt.Errorf("delete task of item %q: %w", id, err)
			}
			return nil
		})
	if err != nil {
		return int(deleted.Load()), err
	}
	return int(deleted.Load()), d.Store.Delete(ctx, job)
}

// forEachItem calls fn for every item of the job with one of statuses,
// itemConcurrency at a time, reading the items in bounded batches. It stops
// at the first error (of fn, the walk or ctx) and returns it.
func forEachItem(ctx context.Context, store *checkpoint.Store, job string, statuses []checkpoint.ItemStatus, fn func(id string) error) error {
	p := newPool(ctx, itemConcurrency, fn)
	walkErr := store.Walk(ctx, job, checkpoint.Want{Status: statuses}, func(vs []checkpoint.View) error {
		for _, v := range vs {
			if err := p.add(v.ID); err != nil {
				return err
			}
		}
		return nil
	})
	if err := p.close(); err != nil {
		return err
	}
	return walkErr
}

// isActiveErr reports asynq's refusal to delete a running task (it has no
// sentinel error for it).
func isActiveErr(err error) bool {
	return strings.Contains(err.Error(), "active")
}
