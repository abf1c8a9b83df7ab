package jobs

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/llmfleet/llmfleet/agent"
	"github.com/llmfleet/llmfleet/checkpoint"
	"github.com/llmfleet/llmfleet/input"
	"github.com/llmfleet/llmfleet/tasks"
)

// Response is a person's answer to one request of a parked item: a line
// of a responses file (run --responses), or one `respond`.
type Response struct {
	Item      string             `json:"item"`
	Request   string             `json:"request,omitempty"`
	Decision  agent.DecisionKind `json:"decision"`
	Message   string             `json:"message,omitempty"`
	Arguments json.RawMessage    `json:"arguments,omitempty"`
	Answer    *string            `json:"answer,omitempty"`
	Line      int                `json:"-"`
	Source    string             `json:"-"`
}

// RespondSummary is what answering did.
type RespondSummary struct {
	// Applied are the answers recorded; AlreadyAnswered those whose
	// request was answered before (nothing changed).
	Applied         int `json:"applied"`
	AlreadyAnswered int `json:"already_answered"`
	// Resumed are the items whose every request is now answered: their
	// tasks went back to the queue.
	Resumed       int               `json:"resumed"`
	Rejected      int               `json:"rejected"`
	RejectedLines []input.Rejection `json:"rejected_lines"`
	// Notes say what happened to lines that changed nothing.
	Notes []string `json:"notes,omitempty"`
}

// maxResponseBytes bounds one line of a responses file.
const maxResponseBytes = 1 << 20

// ReadResponses reads a responses file, one JSON object per line. Lines
// that are not a response are returned as rejections with their line
// number; blank lines are skipped.
func ReadResponses(r io.Reader) ([]Response, []input.Rejection, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var out []Response
	var bad []input.Rejection
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		if len(line) > maxResponseBytes {
			bad = append(bad, input.Rejection{Line: n, Error: fmt.Sprintf("line is over %d bytes", maxResponseBytes)})
		} else if t := bytes.TrimSpace(line); len(t) > 0 {
			var resp Response
			dec := json.NewDecoder(bytes.NewReader(t))
			dec.DisallowUnknownFields()
			if derr := dec.Decode(&resp); derr != nil {
				bad = append(bad, input.Rejection{Line: n, Error: "not a response {item, request, decision, message?, arguments?, answer?}: " + derr.Error()})
			} else {
				resp.Line, resp.Source = n, fmt.Sprintf("line %d", n)
				out = append(out, resp)
			}
		}
		if errors.Is(err, io.EOF) {
			return out, bad, nil
		}
		if err != nil {
			return out, bad, fmt.Errorf("read responses: %w", err)
		}
	}
}

// Respond records answers to parked items' requests. Each answer is
// checked against its request (an unknown item or request, a decision that
// does not fit it, arguments the tool refuses are rejected, named by line)
// and recorded on its own: a bad answer changes nothing else. An item
// whose requests are all answered goes back to the queue and resumes at its
// parked step.
func Respond(ctx context.Context, d Deps, job string, rs []Response) (RespondSummary, error) {
	sum := RespondSummary{RejectedLines: []input.Rejection{}}
	j, err := d.Store.Job(ctx, job)
	if err != nil {
		return sum, err
	}
	if !j.Policy.Agent() {
		return sum, &UsageError{Msg: fmt.Sprintf("job %q has no tools: nothing in it waits for a person", job)}
	}
	runner := &agent.Runner{}
	ready := map[string]bool{}
	var order []string
	for _, r := range rs {
		outcome, err := respondOne(ctx, d.Store, job, j.Policy, runner, r)
		var re *rejectedError
		switch {
		case errors.As(err, &re):
			sum.Rejected++
			sum.RejectedLines = append(sum.RejectedLines, input.Rejection{Line: r.Line, Error: re.msg})
		case err != nil:
			return sum, err
		case outcome.already != "":
			sum.AlreadyAnswered++
			sum.Notes = append(sum.Notes, fmt.Sprintf("%s: %s", r.Source, outcome.already))
			if outcome.complete && !ready[r.Item] {
				// Answered before, yet not resumed (a wake that failed,
				// a producer that died): wake it now.
				ready[r.Item] = true
				order = append(order, r.Item)
			}
		default:
			sum.Applied++
			if outcome.complete && !ready[r.Item] {
				ready[r.Item] = true
				order = append(order, r.Item)
			}
		}
	}
	var errs []error
	for _, id := range order {
		if err := wakeTask(ctx, d, job, id, j.Policy); err != nil {
			// The answers are recorded: answering again wakes the item.
			errs = append(errs, fmt.Errorf("resume item %q (its answers are recorded; answer again to retry): %w", id, err))
			continue
		}
		sum.Resumed++
	}
	return sum, errors.Join(errs...)
}

type rejectedError struct{ msg string }

func (e *rejectedError) Error() string { return e.msg }

func rejected(format string, args ...any) error {
	return &rejectedError{msg: fmt.Sprintf(format, args...)}
}

type responded struct {
	already  string // why nothing changed
	complete bool   // every request of the item is now answered
}

// respondWaitFor bounds how long an answer waits for an item a worker is
// looking at (its task woke up) to be parked again.
const respondWaitFor = 10 * time.Second

func respondOne(ctx context.Context, store *checkpoint.Store, job string, pol checkpoint.Policy, runner *agent.Runner, r Response) (responded, error) {
	if r.Item == "" {
		return responded{}, rejected("item is missing")
	}
	if r.Decision == "" {
		return responded{}, rejected("decision is missing (approve, reject, edit or answer)")
	}
	dec := agent.Decision{Decision: r.Decision, Message: r.Message, Arguments: r.Arguments, At: time.Now().UTC()}
	if r.Answer != nil {
		dec.Answer = *r.Answer
	}
	switch {
	case r.Decision == agent.DecideAnswer && r.Answer == nil:
		return responded{}, rejected("decision answer needs an answer")
	case r.Decision != agent.DecideAnswer && r.Answer != nil:
		return responded{}, rejected("answer is only for decision answer, got decision %q", r.Decision)
	case r.Decision != agent.DecideEdit && len(r.Arguments) > 0:
		return responded{}, rejected("arguments are only for decision edit, got decision %q", r.Decision)
	case r.Decision != agent.DecideReject && r.Message != "":
		return responded{}, rejected("message is only for decision reject, got decision %q", r.Decision)
	}
	deadline := time.Now().Add(respondWaitFor)
	for {
		reqs, raw, err := store.Requests(ctx, job, r.Item)
		if err != nil {
			return responded{}, err
		}
		v, err := store.Item(ctx, job, r.Item)
		if errors.Is(err, checkpoint.ErrItemNotFound) {
			return responded{}, rejected("item %q is not in job %q", r.Item, job)
		}
		if err != nil {
			return responded{}, err
		}
		undecided := agent.Undecided(reqs)
		if len(reqs) == 0 {
			return responded{}, rejected("item %q does not wait for a person (it is %s)", r.Item, v.Status)
		}
		if r.Request == "" && len(undecided) == 0 {
			return responded{already: fmt.Sprintf("item %s has no request left to answer: this answer changes nothing", r.Item),
				complete: v.Status == checkpoint.ItemPending}, nil
		}
		id := r.Request
		if id == "" {
			if len(undecided) != 1 {
				return responded{}, rejected("item %q has %d requests waiting (%s): name one with request", r.Item, len(undecided), requestIDs(undecided))
			}
			id = undecided[0].ID
		}
		req, ok := agent.Named(reqs, id)
		if !ok {
			return responded{}, rejected("item %q has no request %q (its requests: %s)", r.Item, id, requestIDs(reqs))
		}
		if req.Decision != nil {
			return responded{already: fmt.Sprintf("request %s of item %s was already answered (%s at %s): this answer changes nothing",
				id, r.Item, req.Decision.Decision, req.Decision.At.Format(time.RFC3339)),
				complete: len(undecided) == 0 && v.Status == checkpoint.ItemPending}, nil
		}
		if v.Status != checkpoint.ItemAwaiting {
			// A worker is looking at it (its task woke up): it parks it
			// again, or it ends.
			if v.Status == checkpoint.ItemActive && time.Now().Before(deadline) {
				if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
					return responded{}, err
				}
				continue
			}
			return responded{}, rejected("item %q is %s: its request %s can no longer be answered", r.Item, v.Status, id)
		}
		tool, _ := agent.Find(pol.Tools, req.Tool)
		if err := req.Fits(dec, tool, runner); err != nil {
			return responded{}, rejected("item %q: %v", r.Item, err)
		}
		if dec.Decision == agent.DecideEdit {
			var b bytes.Buffer
			_ = json.Compact(&b, dec.Arguments) // valid: Fits checked it
			dec.Arguments = b.Bytes()
		}
		req.Decision = &dec
		err = store.Decide(ctx, job, r.Item, raw, reqs)
		switch {
		case errors.Is(err, checkpoint.ErrRequestsChanged), errors.Is(err, checkpoint.ErrNotAwaiting) && time.Now().Before(deadline):
			if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
				return responded{}, err
			}
			continue
		case errors.Is(err, checkpoint.ErrNotAwaiting):
			return responded{}, rejected("item %q no longer awaits input: its request %s can no longer be answered", r.Item, id)
		case err != nil:
			return responded{}, err
		}
		return responded{complete: len(agent.Undecided(reqs)) == 0}, nil
	}
}

func requestIDs(reqs []agent.Request) string {
	ids := make([]string, len(reqs))
	for i, r := range reqs {
		ids[i] = r.ID + " (" + r.Tool + ")"
	}
	if len(ids) == 0 {
		return "none"
	}
	return strings.Join(ids, ", ")
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// wakeWait bounds how long waking a parked item waits for a task a worker
// is parking.
const wakeWait = 10 * time.Second

// wakeTask runs a parked item's task now: it waits in asynq's retry set
// (run at once), or is run from the archive or enqueued again when it is
// gone (ensureTask).
func wakeTask(ctx context.Context, d Deps, job, id string, pol checkpoint.Policy) error {
	if d.Inspector != nil {
		_, err := ensureTask(ctx, d, job, id, pol.Queue, TaskOptions(pol), true)
		return err
	}
	t, err := tasks.NewItemTask(job, id, TaskOptions(pol)...)
	if err != nil {
		return err
	}
	if _, err := d.Client.EnqueueContext(ctx, t); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return err
	}
	return nil
}

// Inbox lists the requests waiting for a person, in input order.
func Inbox(ctx context.Context, store *checkpoint.Store, job string) ([]InboxEntry, error) {
	if _, err := store.Job(ctx, job); err != nil {
		return nil, err
	}
	var out []InboxEntry
	err := store.Inbox(ctx, job, func(ws []checkpoint.Waiting) error {
		for _, w := range ws {
			for _, r := range agent.Undecided(w.Requests) {
				out = append(out, InboxEntry{Item: w.Item, Request: r})
			}
		}
		return nil
	})
	return out, err
}

// InboxEntry is one request waiting for a person.
type InboxEntry struct {
	Item string `json:"item"`
	agent.Request
}

// SortRejections orders rejections by line.
func SortRejections(rs []input.Rejection) []input.Rejection {
	sort.SliceStable(rs, func(a, b int) bool { return rs[a].Line < rs[b].Line })
	return rs
}

// PrintResponses writes what answering did, for people.
func PrintResponses(w io.Writer, s RespondSummary) {
	fmt.Fprintf(w, "responses: %d recorded, %d already answered, %d items resumed, %d lines rejected\n",
		s.Applied, s.AlreadyAnswered, s.Resumed, s.Rejected)
	for _, n := range s.Notes {
		fmt.Fprintf(w, "  %s\n", n)
	}
	for _, r := range s.RejectedLines {
		fmt.Fprintf(w, "  line %d: %s\n", r.Line, r.Error)
	}
}
