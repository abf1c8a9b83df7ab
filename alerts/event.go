package alerts

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Kind is an event's type, a stable string receivers switch on.
type Kind string

// The events. Their strings never change once shipped.
const (
	// ErrorRate: a job's failures in the window are above the rate, with at
	// least the minimum of items in the window.
	ErrorRate Kind = "error_rate"
	// BreakerOpen: the fleet-wide breaker opened from closed (a failed
	// probe reopening it is the same outage, not a new event).
	BreakerOpen Kind = "breaker_open"
	// BreakerClosed: the breaker closed again after an outage.
	BreakerClosed Kind = "breaker_closed"
	// BudgetPaused: a job was paused because it reached its budget.
	BudgetPaused Kind = "budget_paused"
	// AwaitingInput: an item waits for a person's answer.
	AwaitingInput Kind = "awaiting_input"
	// JobFinished: every item of a job is done or failed (or it was
	// cancelled and drained), with the summary.
	JobFinished Kind = "job_finished"
	// JobExpired: a job passed its deadline before finishing.
	JobExpired Kind = "job_expired"
)

// Event is one alert. Its JSON is {"id", "event", "job", "at", ...details}.
type Event struct {
	// ID is unique per event and the same for every worker raising it, so
	// a receiver can drop a redelivery.
	ID   string    `json:"id"`
	Kind Kind      `json:"event"`
	Job  string    `json:"job"`
	At   time.Time `json:"at"`
	// Details are the event's other fields, flattened into its JSON.
	Details map[string]any `json:"-"`
}

// eventID derives an event's id from what identifies it: its kind, its job
// and a key the workers agree on (a transition's time, a finish time).
func eventID(kind Kind, job string, key ...string) string {
	h := sha256.New()
	h.Write([]byte(kind))
	h.Write([]byte{0})
	h.Write([]byte(job))
	for _, k := range key {
		h.Write([]byte{0})
		h.Write([]byte(k))
	}
	return "evt_" + hex.EncodeToString(h.Sum(nil))[:24]
}

var reserved = map[string]bool{"id": true, "event": true, "job": true, "at": true}

// MarshalJSON flattens the details beside the four common fields.
func (e Event) MarshalJSON() ([]byte, error) {
	m := make(map[string]any, len(e.Details)+4)
	for k, v := range e.Details {
		if !reserved[k] {
			m[k] = v
		}
	}
	m["id"], m["event"], m["job"], m["at"] = e.ID, e.Kind, e.Job, e.At.UTC().Format(time.RFC3339Nano)
	return json.Marshal(m)
}

// UnmarshalJSON reads what MarshalJSON wrote; details stay raw JSON, so
// they are sent exactly as they were raised.
func (e *Event) UnmarshalJSON(b []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	var at string
	for k, dst := range map[string]any{"id": &e.ID, "event": &e.Kind, "job": &e.Job, "at": &at} {
		if raw, ok := m[k]; ok {
			if err := json.Unmarshal(raw, dst); err != nil {
				return fmt.Errorf("event field %q: %w", k, err)
			}
		}
		delete(m, k)
	}
	t, err := time.Parse(time.RFC3339Nano, at)
	if err != nil {
		return fmt.Errorf("event field \"at\": %w", err)
	}
	e.At = t
	e.Details = make(map[string]any, len(m))
	for k, v := range m {
		e.Details[k] = v
	}
	return nil
}

// Text is the event in one line, for Slack and logs. It never holds more
// than the event's own fields.
func (e Event) Text() string {
	d := func(k string) string {
		v, ok := e.Details[k]
		if !ok {
			return ""
		}
		if raw, ok := v.(json.RawMessage); ok {
			var s string
			if json.Unmarshal(raw, &s) == nil {
				return mrkdwn(s)
			}
			return mrkdwn(string(raw))
		}
		return mrkdwn(fmt.Sprint(v))
	}
	e.Job = mrkdwn(e.Job)
	switch e.Kind {
	case ErrorRate:
		return fmt.Sprintf(":rotating_light: Job *%s*: %s of %s items failed in the last %s (rate %s, threshold %s)",
			e.Job, d("failed"), d("items"), d("window"), d("rate"), d("threshold"))
	case BreakerOpen:
		return fmt.Sprintf(":no_entry: Circuit breaker open for endpoint %s (job *%s*): %s", d("endpoint"), e.Job, d("reason"))
	case BreakerClosed:
		return fmt.Sprintf(":white_check_mark: Circuit breaker closed again for endpoint %s (job *%s*)", d("endpoint"), e.Job)
	case BudgetPaused:
		return fmt.Sprintf(":money_with_wings: Job *%s* paused: %s", e.Job, d("reason"))
	case AwaitingInput:
		return fmt.Sprintf(":raising_hand: Job *%s*: item %s waits for a person (%s requests)", e.Job, d("item"), d("requests"))
	case JobFinished:
		return fmt.Sprintf(":checkered_flag: Job *%s* finished: %s", e.Job, summaryText(e.Details["summary"]))
	case JobExpired:
		return fmt.Sprintf(":hourglass: Job *%s* expired: %s", e.Job, summaryText(e.Details["summary"]))
	}
	return fmt.Sprintf("%s: job *%s*", e.Kind, e.Job)
}

// mrkdwn escapes text for Slack: &, < and > are its control characters
// (<!channel>, <url|label>), and an item id or a job name is data.
func mrkdwn(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

func summaryText(v any) string {
	var s Summary
	switch x := v.(type) {
	case Summary:
		s = x
	case json.RawMessage:
		if json.Unmarshal(x, &s) != nil {
			return ""
		}
	default:
		return ""
	}
	parts := []string{fmt.Sprintf("%d done, %d failed of %d", s.Done, s.Failed, s.Total)}
	if s.SuccessRate != nil {
		parts = append(parts, fmt.Sprintf("success rate %.1f%%", *s.SuccessRate*100))
	}
	parts = append(parts, fmt.Sprintf("cost $%.4f", s.CostUSD))
	return strings.Join(parts, ", ")
}
