package tasks

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/hibiken/asynq"
)

// TypeItem is the task type of one batch item: one chat completion to make.
const TypeItem = "llm:item"

// ItemPayload is the payload of a TypeItem task.
type ItemPayload struct {
	// Job is the job name the item belongs to.
	Job string `json:"job"`
	// Item is the item's id within the job.
	Item string `json:"item"`
}

// TaskID returns the deterministic asynq TaskID of an item: the same job and
// item always give the same id, so a second enqueue of a queued item fails
// with asynq.ErrTaskIDConflict instead of creating a duplicate.
func TaskID(job, item string) string {
	h := sha256.New()
	h.Write([]byte(job))
	h.Write([]byte{0})
	h.Write([]byte(item))
	return "item:" + hex.EncodeToString(h.Sum(nil)[:16])
}

// NewItemTask returns the task for one item, with its deterministic TaskID.
// Other options (queue, retry headroom, timeout) are the caller's.
func NewItemTask(job, item string, opts ...asynq.Option) (*asynq.Task, error) {
	if job == "" || item == "" {
		return nil, errors.New("new item task: job and item id are required")
	}
	b, err := json.Marshal(ItemPayload{Job: job, Item: item})
	if err != nil {
		return nil, fmt.Errorf("new item task: %w", err)
	}
	opts = append([]asynq.Option{asynq.TaskID(TaskID(job, item))}, opts...)
	return asynq.NewTask(TypeItem, b, opts...), nil
}

// ParseItemPayload decodes a TypeItem payload.
func ParseItemPayload(b []byte) (ItemPayload, error) {
	var p ItemPayload
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("decode %s payload: %w", TypeItem, err)
	}
	if p.Job == "" || p.Item == "" {
		return p, fmt.Errorf("decode %s payload: job and item are required", TypeItem)
	}
	return p, nil
}
