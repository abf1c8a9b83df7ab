package jobs

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"github.com/llmfleet/llmfleet/checkpoint"
	"github.com/llmfleet/llmfleet/tasks"
)

// ExportResults writes one JSON line per done item, in input order. It
// streams: memory does not grow with the job.
func ExportResults(ctx context.Context, store *checkpoint.Store, job string, w io.Writer) (int, error) {
	if _, err := store.Job(ctx, job); err != nil {
		return 0, err
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	n := 0
	err := store.Walk(ctx, job, checkpoint.Want{Result: true, Status: []checkpoint.ItemStatus{checkpoint.ItemDone}}, func(vs []checkpoint.View) error {
		for _, v := range vs {
			if v.Result == nil {
				continue
			}
			bw.Write(v.Result)
			if err := bw.WriteByte('\n'); err != nil {
				return fmt.Errorf("write results: %w", err)
			}
			n++
		}
		return nil
	})
	if err != nil {
		return n, err
	}
	if err := bw.Flush(); err != nil {
		return n, fmt.Errorf("write results: %w", err)
	}
	return n, nil
}

// FailedColumns are the columns the failed-items CSV adds after the item's
// own fields.
var FailedColumns = []string{"error_class", "error_reason", "attempts"}

// ExportFailed writes a CSV of failed items in input order: id, the item's
// input fields, error_class, error_reason, attempts. It streams.
func ExportFailed(ctx context.Context, store *checkpoint.Store, job string, w io.Writer) (int, error) {
	j, err := store.Job(ctx, job)
	if err != nil {
		return 0, err
	}
	var fields []string
	for _, f := range j.Fields {
		if f != "id" {
			fields = append(fields, f)
		}
	}
	cw := csv.NewWriter(w)
	header := append(append([]string{"id"}, fields...), FailedColumns...)
	if err := cw.Write(header); err != nil {
		return 0, fmt.Errorf("write failed items: %w", err)
	}
	n := 0
	row := make([]string, len(header))
	err = store.Walk(ctx, job, checkpoint.Want{Input: true, Failure: true, Status: []checkpoint.ItemStatus{checkpoint.ItemFailed}}, func(vs []checkpoint.View) error {
		for _, v := range vs {
			var it tasks.Item
			if err := json.Unmarshal(v.Input, &it); err != nil {
				return fmt.Errorf("item %q: decode stored input: %w", v.ID, err)
			}
			row[0] = v.ID
			for i, f := range fields {
				row[1+i] = it.Fields[f]
			}
			class, reason, attempts := "", "", 0
			if v.Failure != nil {
				class, reason, attempts = v.Failure.Class, v.Failure.Reason, v.Failure.Attempts
			}
			k := 1 + len(fields)
			row[k], row[k+1], row[k+2] = class, reason, strconv.Itoa(attempts)
			if err := cw.Write(row); err != nil {
				return fmt.Errorf("write failed items: %w", err)
			}
			n++
		}
		return nil
	})
	if err != nil {
		return n, err
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return n, fmt.Errorf("write failed items: %w", err)
	}
	return n, nil
}

// Transcript is one line of export --transcripts: an item's messages and
// every step committed after them, the final answer included.
type Transcript struct {
	ID       string          `json:"id"`
	Status   string          `json:"status"`
	Messages []tasks.Message `json:"messages"`
}

// ExportTranscripts writes one Transcript line per finished item (done or
// failed), in input order. It streams: one item's steps are in memory at a
// time.
func ExportTranscripts(ctx context.Context, store *checkpoint.Store, job string, w io.Writer) (int, error) {
	if _, err := store.Job(ctx, job); err != nil {
		return 0, err
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	n := 0
	want := checkpoint.Want{Input: true, Status: []checkpoint.ItemStatus{checkpoint.ItemDone, checkpoint.ItemFailed}}
	err := store.Walk(ctx, job, want, func(vs []checkpoint.View) error {
		for _, v := range vs {
			var it tasks.Item
			if err := json.Unmarshal(v.Input, &it); err != nil {
				return fmt.Errorf("export transcripts: item %q: %w", v.ID, err)
			}
			steps, err := store.Steps(ctx, job, v.ID)
			if err != nil {
				return fmt.Errorf("export transcripts: %w", err)
			}
			line := Transcript{ID: v.ID, Status: string(v.Status), Messages: checkpoint.Transcript(it.Messages, steps)}
			if err := enc.Encode(line); err != nil {
				return fmt.Errorf("write transcripts: %w", err)
			}
			n++
		}
		return nil
	})
	if err != nil {
		return n, err
	}
	if err := bw.Flush(); err != nil {
		return n, fmt.Errorf("write transcripts: %w", err)
	}
	return n, nil
}
