package jobs

import (
	"fmt"
	"io"
)

// PrintSummary writes a run summary for people: one line of counts, then
// each rejected line with its reason.
func PrintSummary(w io.Writer, s Summary) {
	verb := "resumed"
	switch {
	case s.Created:
		verb = "created"
	case s.Total == 0 && s.SkippedDone == 0:
		verb = "not recorded"
	}
	fmt.Fprintf(w, "job %s %s: %d items — %d enqueued, %d already queued, %d already done, %d failed earlier (use replay), %d duplicate lines collapsed, %d lines rejected\n",
		s.Job, verb, s.Total, s.Enqueued, s.AlreadyQueued, s.SkippedDone, s.SkippedFailed, s.DuplicatesCollapsed, s.Rejected)
	if s.AwaitingInput > 0 {
		fmt.Fprintf(w, "%d items await a person: see producer inbox --job %s\n", s.AwaitingInput, s.Job)
	}
	if s.Enqueued == 0 && s.Total > 0 && s.AwaitingInput == 0 {
		fmt.Fprintln(w, "nothing new to enqueue: every item is done, failed or already queued")
	}
	for _, r := range s.RejectedLines {
		fmt.Fprintf(w, "  line %d: %s\n", r.Line, r.Error)
	}
}
