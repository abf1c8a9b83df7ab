package checkpoint

import (
	"strconv"
	"time"
)

const jobsKey = "llmfleet:jobs"

// keys returns the job's keys in the order the Lua scripts expect.
func keys(job string) []string {
	p := "llmfleet:{" + job + "}:"
	return []string{p + "job", p + "input", p + "status", p + "order", p + "calls", p + "claim", p + "result", p + "failure", p + "lasterr", p + "steps", p + "awaiting", p + "response"}
}

const (
	kJob = iota
	kInput
	kStatus
	kOrder
	kCalls
	kClaim
	kResult
	kFailure
	kLastErr
	// kSteps holds agent items' committed steps: field "c:ID" is item ID's
	// step count, "N:ID" its step N (1-based) as JSON.
	kSteps
	// kAwaiting holds parked agent items' requests for a person: item id
	// → JSON array of agent.Request (with their decisions).
	kAwaiting
	// kResponse holds the provider's response of items of OpenAI batch
	// files: item id → {"status_code", "request_id", "body"} (JSON), for
	// export --format openai-batch.
	kResponse
)

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(s string) time.Time {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n == 0 {
		return time.Time{}
	}
	return time.UnixMilli(n).UTC()
}

// Keys of fleet-wide state that is not a job's: the breaker and the rate
// limiter. They are spelled here so that this package stays the one place
// that knows every Redis key llmfleet writes. Each family shares a hash tag,
// so its Lua scripts touch one Cluster slot.

// BreakerKeys returns the keys of one endpoint's circuit breaker, in the
// order package breaker's scripts expect: state hash, failed-items window,
// successes per second (a hash: successes are counted, not listed),
// rate-limited-items window, consecutive-failure streak, probe leases,
// transition log, rate-limited items that later succeeded.
func BreakerKeys(endpoint string) []string {
	p := "llmfleet:breaker:{" + endpoint + "}:"
	return []string{p + "state", p + "fail", p + "okb", p + "rl", p + "streak", p + "probes", p + "transitions", p + "rlok"}
}

// LimiterKeys returns the keys of one provider key's rate limiter: the RPM
// and TPM cells as given to redis_rate (which prefixes "rate:" itself), and
// the fleet-wide hold set by a 429 with Retry-After.
func LimiterKeys(provider string) (rpm, tpm, hold string) {
	p := "llmfleet:limit:{" + provider + "}:"
	return p + "rpm", p + "tpm", p + "hold"
}

// EndpointField is the job hash field where workers note the breaker
// endpoint the job's calls go through, so status can show its state.
const EndpointField = "endpoint"

// AlertKeySet names the keys of the fleet's alerts (package alerts). All
// share the hash tag {fleet}, so one Lua script may gate and queue an event
// in one Cluster slot. Counts, Raised and Cooldown are prefixes: the job
// name, the event id or "rule:job" is appended.
type AlertKeySet struct {
	// Outbox is the Redis Stream of raised events (event JSON only, never a
	// webhook URL or secret), read by a consumer group of the workers.
	Outbox string
	// Counts + job is a hash of the job's finished and failed items per
	// time bucket: fields "BUCKET:n" and "BUCKET:f".
	Counts string
	// Raised + event id marks an event raised, so a second worker raising
	// the same event is a no-op.
	Raised string
	// Cooldown + "rule:job" holds a rule back for its cooldown.
	Cooldown string
}

// AlertKeys returns the keys of the fleet's alerts.
func AlertKeys() AlertKeySet {
	p := "llmfleet:alerts:{fleet}:"
	return AlertKeySet{Outbox: p + "outbox", Counts: p + "counts:", Raised: p + "raised:", Cooldown: p + "cooldown:"}
}
