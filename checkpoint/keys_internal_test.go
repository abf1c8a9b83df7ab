package checkpoint

import (
	"strings"
	"testing"
)

// The Lua scripts address the job's keys by position (KEYS[1] job, ...,
// KEYS[10] steps, KEYS[11] awaiting, KEYS[12] response): each index
// constant must name the key at its position, or a script writes one hash
// into another.
func TestKeyIndexes(t *testing.T) {
	k := keys("j")
	for idx, suffix := range map[int]string{
		kJob: "job", kInput: "input", kStatus: "status", kOrder: "order", kCalls: "calls", kClaim: "claim",
		kResult: "result", kFailure: "failure", kLastErr: "lasterr", kSteps: "steps", kAwaiting: "awaiting", kResponse: "response",
	} {
		if !strings.HasSuffix(k[idx], "}:"+suffix) {
			t.Errorf("keys()[%d] = %q, want the %s key", idx, k[idx], suffix)
		}
	}
	if len(k) != kResponse+1 {
		t.Errorf("keys() has %d keys, want %d", len(k), kResponse+1)
	}
}
