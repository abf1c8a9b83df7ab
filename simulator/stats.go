package simulator

import (
	"maps"
	"slices"
	"time"
)

// Stats is what the simulator has seen since it started or was last reset;
// GET /admin/stats serves the same data as JSON.
type Stats struct {
	// Calls counts every chat completion request received, valid or not.
	// Embedding requests are counted apart (EmbeddingCalls), as are all
	// the Embedding fields: the others are about chat completions only.
	Calls int `json:"calls"`
	// ByStatus counts calls by outcome: the HTTP status as a string ("200",
	// "429", ...), "timeout" for calls held open, "reset" for connections
	// closed without a response, and "canceled" for calls whose client gave
	// up during the simulated latency. Once no call is in flight, the counts
	// sum to Calls.
	ByStatus map[string]int `json:"by_status"`
	// ByContent counts calls by reply key (see Key), for every call whose
	// body parsed, including the rejected ones.
	ByContent map[string]int `json:"by_content"`
	// TokensIn and TokensOut sum the usage of calls answered 200 with a
	// chat completion.
	TokensIn  int `json:"tokens_in"`
	TokensOut int `json:"tokens_out"`
	// TimesByContent lists each key's call arrival times, oldest first.
	// The JSON form (only with ?times=1) has RFC 3339 UTC strings with
	// milliseconds.
	TimesByContent map[string][]time.Time `json:"-"`

	// EmbeddingCalls counts every POST /v1/embeddings request received,
	// valid or not.
	EmbeddingCalls int `json:"embedding_calls"`
	// EmbeddingInputs counts the inputs of the embedding requests that
	// passed validation, including those rejected afterwards (limits,
	// directives, faults).
	EmbeddingInputs int `json:"embedding_inputs"`
	// EmbeddingByStatus counts embedding requests by outcome, as ByStatus
	// does chat calls; once none is in flight the counts sum to
	// EmbeddingCalls.
	EmbeddingByStatus map[string]int `json:"embedding_by_status"`
	// EmbeddingByContent counts, per input's Key, the validated embedding
	// requests that carried that input (an input twice in one request
	// counts twice).
	EmbeddingByContent map[string]int `json:"embedding_by_content"`
	// EmbeddingTokens sums the prompt tokens of embedding requests
	// answered 200 with an embedding list.
	EmbeddingTokens int `json:"embedding_tokens"`
}

// TimeFormat is the layout of the arrival times in /admin/stats?times=1.
const TimeFormat = "2006-01-02T15:04:05.000Z07:00"

func newStats() Stats {
	return Stats{
		ByStatus:           map[string]int{},
		ByContent:          map[string]int{},
		TimesByContent:     map[string][]time.Time{},
		EmbeddingByStatus:  map[string]int{},
		EmbeddingByContent: map[string]int{},
	}
}

func (s Stats) clone() Stats {
	c := s
	c.ByStatus = maps.Clone(s.ByStatus)
	c.ByContent = maps.Clone(s.ByContent)
	c.EmbeddingByStatus = maps.Clone(s.EmbeddingByStatus)
	c.EmbeddingByContent = maps.Clone(s.EmbeddingByContent)
	c.TimesByContent = make(map[string][]time.Time, len(s.TimesByContent))
	for k, v := range s.TimesByContent {
		c.TimesByContent[k] = slices.Clone(v)
	}
	return c
}

// statsJSON is the wire form of /admin/stats.
type statsJSON struct {
	Stats
	// An interface, so that an empty map asked for is still written.
	TimesByContent any `json:"times_by_content,omitempty"`
}

func (s Stats) wire(withTimes bool) statsJSON {
	out := statsJSON{Stats: s}
	if withTimes {
		times := make(map[string][]string, len(s.TimesByContent))
		for k, ts := range s.TimesByContent {
			strs := make([]string, len(ts))
			for i, t := range ts {
				strs[i] = t.UTC().Format(TimeFormat)
			}
			times[k] = strs
		}
		out.TimesByContent = times
	}
	return out
}
