package jobs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

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
func Delete(ctx context.Context, d Deps, job string) (tasksDeleted int, err error) {
	j, err := d.Store.Job(ctx, job)
	if err != nil {
		return 0, err
	}
	ids := make(chan string, 256)
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for id := range ids {
				err := d.Inspector.DeleteTask(j.Policy.Queue, tasks.TaskID(job, id))
				mu.Lock()
				switch {
				case err == nil:
					tasksDeleted++
				case errors.Is(err, asynq.ErrTaskNotFound), errors.Is(err, asynq.ErrQueueNotFound):
				default:
					// Active tasks cannot be deleted; they end on their own.
					if firstErr == nil && !isActiveErr(err) {
						firstErr = fmt.Errorf("delete task of item %q: %w", id, err)
					}
				}
				mu.Unlock()
			}
		})
	}
	walkErr := d.Store.Walk(ctx, job, checkpoint.Want{Status: []checkpoint.ItemStatus{checkpoint.ItemPending, checkpoint.ItemActive, checkpoint.ItemFailed}},
		func(vs []checkpoint.View) error {
			for _, v := range vs {
				select {
				case ids <- v.ID:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return nil
		})
	close(ids)
	wg.Wait()
	if walkErr != nil {
		return tasksDeleted, walkErr
	}
	if firstErr != nil {
		return tasksDeleted, firstErr
	}
	return tasksDeleted, d.Store.Delete(ctx, job)
}

// isActiveErr reports asynq's refusal to delete a running task (it has no
// sentinel error for it).
func isActiveErr(err error) bool {
	return strings.Contains(err.Error(), "active")
}
