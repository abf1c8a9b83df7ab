package alerts

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/llmfleet/llmfleet/checkpoint"
	"github.com/llmfleet/llmfleet/jobs"
)

// Format is how an event's body is written.
type Format string

// The formats of --alert-format.
const (
	// JSON is the event itself: {"id", "event", "job", "at", ...details}.
	JSON Format = "json"
	// Slack is a Slack incoming-webhook message: {"text", "blocks"}.
	Slack Format = "slack"
)

// SignatureHeader carries "sha256=HEX", the HMAC-SHA256 of the exact body
// with the secret, when a secret is set.
const SignatureHeader = "X-Llmfleet-Signature"

// Body returns the event written in format f.
func Body(e Event, f Format) ([]byte, error) {
	switch f {
	case JSON, "":
		return json.Marshal(e)
	case Slack:
		text := e.Text()
		msg := map[string]any{
			"text": text,
			"blocks": []any{
				map[string]any{"type": "section", "text": map[string]any{"type": "mrkdwn", "text": text}},
				map[string]any{"type": "context", "elements": []any{
					map[string]any{"type": "mrkdwn", "text": fmt.Sprintf("`%s` · %s · id %s", e.Kind, e.At.UTC().Format(time.RFC3339), e.ID)},
				}},
			},
		}
		return json.Marshal(msg)
	}
	return nil, fmt.Errorf("--alert-format: %q is not json or slack", f)
}

// Sign returns the SignatureHeader value of body: "sha256=" and the hex
// HMAC-SHA256 of body with secret.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify reports whether sig is body's signature with secret, in constant
// time: what a receiver does.
func Verify(secret string, body []byte, sig string) bool {
	return hmac.Equal([]byte(Sign(secret, body)), []byte(sig))
}

// Summary is the job summary of job_finished and job_expired.
type Summary struct {
	State         string     `json:"state"`
	Total         int64      `json:"total"`
	Done          int64      `json:"done"`
	Failed        int64      `json:"failed"`
	Rejected      int64      `json:"rejected"`
	Duplicates    int64      `json:"duplicates"`
	AwaitingInput int64      `json:"awaiting_input"`
	ProviderCalls int64      `json:"provider_calls"`
	TokensIn      int64      `json:"tokens_in"`
	TokensOut     int64      `json:"tokens_out"`
	CostUSD       float64    `json:"cost_usd"`
	SuccessRate   *float64   `json:"success_rate"`
	StartedAt     *time.Time `json:"started_at,omitempty"`
	FinishedAt    *time.Time `json:"finished_at,omitempty"`
	Deadline      *time.Time `json:"deadline,omitempty"`
}

// summarize takes the job's numbers from the status users see, so the
// success rate is computed in one place (jobs.NewStatus).
func summarize(j checkpoint.Job) Summary {
	s := jobs.NewStatus(j)
	return Summary{
		State: s.State, Total: s.Total, Done: s.Done, Failed: s.Failed, Rejected: s.Rejected,
		Duplicates: s.Duplicates, AwaitingInput: s.AwaitingInput, ProviderCalls: s.ProviderCalls,
		TokensIn: s.TokensIn, TokensOut: s.TokensOut, CostUSD: s.CostUSD, SuccessRate: s.SuccessRate,
		StartedAt: s.StartedAt, FinishedAt: s.FinishedAt, Deadline: s.Deadline,
	}
}
