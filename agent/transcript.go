package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"

	"github.com/llmfleet/llmfleet/tasks"
)

// Move is what the loop does next.
type Move int

// Moves.
const (
	// CallModel: the transcript ends with something the model must answer
	// (the item's messages, or every tool reply of its last call).
	CallModel Move = iota
	// RunTools: the model's last answer asked for tools not answered yet.
	RunTools
	// Finished: the model answered without tool calls.
	Finished
)

// Next says what follows a transcript (the item's messages and every step
// committed after them), and for RunTools which calls are not answered
// yet, in the order the model asked for them. It is pure: the loop's
// resume point is read from the transcript alone, so a crashed worker's
// successor resumes exactly where the committed steps end.
func Next(msgs []tasks.Message) (Move, []tasks.ToolCall) {
	if len(msgs) == 0 {
		return CallModel, nil
	}
	// The last assistant message, and the tool replies after it.
	i := len(msgs) - 1
	for i >= 0 && msgs[i].Role == "tool" {
		i--
	}
	if i < 0 || msgs[i].Role != "assistant" {
		return CallModel, nil
	}
	last := msgs[i]
	if len(last.ToolCalls) == 0 {
		if i == len(msgs)-1 {
			return Finished, nil
		}
		return CallModel, nil
	}
	answered := map[string]bool{}
	for _, m := range msgs[i+1:] {
		answered[m.ToolCallID] = true
	}
	var pending []tasks.ToolCall
	for _, c := range last.ToolCalls {
		if !answered[c.ID] {
			pending = append(pending, c)
		}
	}
	if len(pending) > 0 {
		return RunTools, pending
	}
	return CallModel, nil
}

// Answer returns the final answer of a Finished transcript.
func Answer(msgs []tasks.Message) string {
	if len(msgs) == 0 {
		return ""
	}
	return msgs[len(msgs)-1].Content
}

// IdempotencyKey is the Idempotency-Key of one tool run: stable for the
// job, item, the model step that asked for the call (its number and when
// it was committed) and the call id, so a run repeated after a crash sends
// the same key, while a replayed item, whose steps are new, sends new ones.
func IdempotencyKey(job, item string, step int, stepAt int64, callID string) string {
	h := sha256.New()
	for _, s := range []string{job, item, strconv.Itoa(step), strconv.FormatInt(stepAt, 10), callID} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}
