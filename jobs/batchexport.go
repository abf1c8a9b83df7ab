package jobs

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"

	"github.com/llmfleet/llmfleet/checkpoint"
	"github.com/llmfleet/llmfleet/tasks"
)

// BatchLine is one line of OpenAI's Batch API output format, as
// https://platform.openai.com/docs/guides/batch describes it: code written
// for OpenAI's batch results reads llmfleet's.
type BatchLine struct {
	ID       string               `json:"id"`
	CustomID string               `json:"custom_id"`
	Response *checkpoint.Response `json:"response"`
	Error    *BatchError          `json:"error"`
}

// BatchError is a batch line's error: the class and the reason.
type BatchError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// batchErrorCode is the error code of a failure without an HTTP error:
// OpenAI's own for a deadline or a cancellation, else the class.
func batchErrorCode(class string) string {
	switch class {
	case "expired":
		return "batch_expired"
	case "cancelled":
		return "batch_cancelled"
	}
	return class
}

// batchLineID is a stable id of an item's output line.
func batchLineID(job, id string) string {
	sum := sha256.Sum256([]byte(job + "\x00" + id))
	return "batch_req_" + hex.EncodeToString(sum[:12])
}

// ExportOpenAIBatch writes the job in OpenAI's batch output format, in
// input order: one line per done item to out (the provider's response body
// as it came for chat items of OpenAI batch files, else one rebuilt in
// OpenAI's shape from the result), and one per failed item to errs (to out
// when errs is nil): a refused request as its HTTP status with an error
// body whose code is the class, any other failure as a request-level error
// (expired and cancelled as OpenAI's batch_expired and batch_cancelled).
// It streams.
func ExportOpenAIBatch(ctx context.Context, store *checkpoint.Store, job string, out, errs io.Writer) (done, failed int, err error) {
	if _, err := store.Job(ctx, job); err != nil {
		return 0, 0, err
	}
	bw := bufio.NewWriterSize(out, 64<<10)
	ew := bw
	if errs != nil {
		ew = bufio.NewWriterSize(errs, 64<<10)
	}
	enc, eenc := json.NewEncoder(bw), json.NewEncoder(ew)
	enc.SetEscapeHTML(false)
	eenc.SetEscapeHTML(false)
	want := checkpoint.Want{Result: true, Failure: true, Response: true, Input: true,
		Status: []checkpoint.ItemStatus{checkpoint.ItemDone, checkpoint.ItemFailed}}
	err = store.Walk(ctx, job, want, func(vs []checkpoint.View) error {
		for _, v := range vs {
			line := BatchLine{ID: batchLineID(job, v.ID), CustomID: v.ID}
			switch v.Status {
			case checkpoint.ItemDone:
				resp, err := responseOf(v)
				if err != nil {
					return fmt.Errorf("export item %q: %w", v.ID, err)
				}
				line.Response = resp
				if err := enc.Encode(line); err != nil {
					return fmt.Errorf("write batch output: %w", err)
				}
				done++
			case checkpoint.ItemFailed:
				f := v.Failure
				if f == nil {
					f = &checkpoint.Failure{Class: "unknown", Reason: "no failure record"}
				}
				if f.Status >= 400 {
					// The provider refused the request: OpenAI writes its
					// status and error body, with error null.
					body, _ := json.Marshal(map[string]any{"error": map[string]any{"message": f.Reason, "type": f.Class, "param": nil, "code": f.Class}})
					line.Response = &checkpoint.Response{StatusCode: f.Status, Body: body}
				} else {
					// No answer to show (a timeout, an answer that was not
					// what was asked, a deadline): a request-level error.
					line.Error = &BatchError{Code: batchErrorCode(f.Class), Message: f.Reason}
				}
				if err := eenc.Encode(line); err != nil {
					return fmt.Errorf("write batch errors: %w", err)
				}
				failed++
			}
		}
		return nil
	})
	if err != nil {
		return done, failed, err
	}
	if err := bw.Flush(); err != nil {
		return done, failed, fmt.Errorf("write batch output: %w", err)
	}
	if ew != bw {
		if err := ew.Flush(); err != nil {
			return done, failed, fmt.Errorf("write batch errors: %w", err)
		}
	}
	return done, failed, nil
}

// responseOf is a done item's response: the one the provider sent, kept
// for OpenAI batch items, else one rebuilt from its result in OpenAI's
// shape (chat.completion, or an embeddings list).
func responseOf(v checkpoint.View) (*checkpoint.Response, error) {
	if len(v.Response) > 0 {
		var r checkpoint.Response
		if err := json.Unmarshal(v.Response, &r); err != nil {
			return nil, err
		}
		return &r, nil
	}
	var r checkpoint.Result
	if err := json.Unmarshal(v.Result, &r); err != nil {
		return nil, err
	}
	var it tasks.Item
	_ = json.Unmarshal(v.Input, &it)
	var body any
	if it.IsEmbedding() {
		type datum struct {
			Object    string          `json:"object"`
			Index     int             `json:"index"`
			Embedding json.RawMessage `json:"embedding"`
		}
		var data []datum
		if len(it.Input) > 1 {
			var vecs []json.RawMessage
			_ = json.Unmarshal(r.Embedding, &vecs)
			for i, vec := range vecs {
				data = append(data, datum{"embedding", i, vec})
			}
		} else {
			data = []datum{{"embedding", 0, r.Embedding}}
		}
		body = map[string]any{"object": "list", "data": data, "model": r.Model,
			"usage": map[string]int{"prompt_tokens": r.TokensIn, "total_tokens": r.TokensIn}}
	} else {
		finish := r.FinishReason
		if finish == "" {
			finish = "stop"
		}
		body = map[string]any{
			"id": "chatcmpl-" + batchLineID("", v.ID)[len("batch_req_"):], "object": "chat.completion",
			"created": r.FinishedAt.Unix(), "model": r.Model,
			"choices": []map[string]any{{"index": 0, "message": map[string]any{"role": "assistant", "content": r.Output}, "logprobs": nil, "finish_reason": finish}},
			"usage":   map[string]int{"prompt_tokens": r.TokensIn, "completion_tokens": r.TokensOut, "total_tokens": r.TokensIn + r.TokensOut},
		}
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	return &checkpoint.Response{StatusCode: 200, Body: b}, nil
}
