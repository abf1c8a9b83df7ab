package embedded

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/llmfleet/llmfleet/agent"
	"github.com/llmfleet/llmfleet/checkpoint"
	"github.com/llmfleet/llmfleet/jobs"
)

// AwaitingLine is one line of NAME.awaiting.jsonl: a request waiting for a
// person (item, request, kind, tool, arguments or question, since) and, in
// Resume, everything its item needs to go on in a later run: its steps and
// all its requests. The embedded Redis lives in memory, so this file is
// what keeps a parked item between runs.
type AwaitingLine struct {
	Item string `json:"item"`
	agent.Request
	Resume Resume `json:"resume"`
}

// Resume is a parked item's saved state.
type Resume struct {
	Steps    []checkpoint.Step `json:"steps"`
	Requests []agent.Request   `json:"requests"`
}

// writeAwaiting writes the job's waiting requests to path (through a
// temporary file), or removes path when nothing waits. Items answered but
// not finished (the run was interrupted before they resumed) are written
// too, with their answers, so no answer is lost. It returns how many
// requests wait.
func writeAwaiting(store *checkpoint.Store, job, path string) (int, error) {
	ctx := context.Background()
	var lines []AwaitingLine
	waiting := 0
	unfinished := []checkpoint.ItemStatus{checkpoint.ItemAwaiting, checkpoint.ItemPending, checkpoint.ItemActive}
	err := store.WithRequests(ctx, job, unfinished, func(ws []checkpoint.Waiting) error {
		for _, w := range ws {
			steps, err := store.Steps(ctx, job, w.Item)
			if err != nil {
				return err
			}
			resume := Resume{Steps: steps, Requests: w.Requests}
			open := agent.Undecided(w.Requests)
			waiting += len(open)
			if len(w.Requests) == 0 {
				continue
			}
			if len(open) == 0 {
				// Answered, not resumed yet: its last request, answered.
				open = w.Requests[len(w.Requests)-1:]
			}
			for _, r := range open {
				lines = append(lines, AwaitingLine{Item: w.Item, Request: r, Resume: resume})
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if len(lines) == 0 {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return 0, err
		}
		return 0, nil
	}
	err = jobs.WriteAtomic(path, func(w io.Writer) error {
		// Lines of items answered in full come last: they need no answer.
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		for _, l := range lines {
			if err := enc.Encode(l); err != nil {
				return err
			}
		}
		return nil
	})
	return waiting, err
}

// readAwaiting reads an earlier run's NAME.awaiting.jsonl: item id → what
// it needs to resume. A missing file is no parked item.
func readAwaiting(path string) (map[string]jobs.Parked, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]jobs.Parked{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 64<<20)
	for n := 1; sc.Scan(); n++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var l AwaitingLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil || l.Item == "" {
			return nil, fmt.Errorf("%s line %d is not a request this program wrote (%v); move the file away to start its items over", path, n, err)
		}
		out[l.Item] = jobs.Parked{Steps: l.Resume.Steps, Requests: l.Resume.Requests}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return out, nil
}

// askTerminal asks every waiting request on the terminal and records the
// answers; it returns how many were answered (0 when the person skipped
// them all).
func askTerminal(ctx context.Context, d jobs.Deps, job string, lines <-chan string, out io.Writer) (int, error) {
	entries, err := jobs.Inbox(ctx, d.Store, job)
	if err != nil {
		return 0, err
	}
	j, err := d.Store.Job(ctx, job)
	if err != nil {
		return 0, err
	}
	read := func(prompt string) (string, bool) {
		fmt.Fprint(out, prompt)
		select {
		case <-ctx.Done():
			return "", false
		case l, ok := <-lines:
			return strings.TrimSpace(l), ok
		}
	}
	answered := 0
	runner := &agent.Runner{}
	for _, e := range entries {
		r := jobs.Response{Item: e.Item, Request: e.ID, Line: answered + 1, Source: "terminal"}
		if e.Kind == agent.KindQuestion {
			fmt.Fprintf(out, "\nitem %s asks (%s): %s\n", e.Item, e.Tool, e.Question)
			a, ok := read("your answer (empty to leave it for later): ")
			if !ok {
				return answered, ctx.Err()
			}
			if a == "" {
				continue
			}
			r.Decision, r.Answer = agent.DecideAnswer, &a
		} else {
			fmt.Fprintf(out, "\nitem %s wants to run %s with %s\n", e.Item, e.Tool, e.Arguments)
		ask:
			a, ok := read("[a]pprove, [r]eject, [e]dit the arguments, or [s]kip (leave it for later)? ")
			if !ok {
				return answered, ctx.Err()
			}
			switch strings.ToLower(a) {
			case "a", "approve", "y", "yes":
				r.Decision = agent.DecideApprove
			case "r", "reject", "n", "no":
				r.Decision = agent.DecideReject
				if r.Message, ok = read("why (the model reads it; may be empty): "); !ok {
					return answered, ctx.Err()
				}
			case "e", "edit":
				args, ok := read("new arguments (JSON): ")
				if !ok {
					return answered, ctx.Err()
				}
				t, _ := agent.Find(j.Policy.Tools, e.Tool)
				if err := e.Request.Fits(agent.Decision{Decision: agent.DecideEdit, Arguments: json.RawMessage(args)}, t, runner); err != nil || !json.Valid([]byte(args)) {
					fmt.Fprintf(out, "not valid arguments: %v\n", err)
					goto ask
				}
				r.Decision, r.Arguments = agent.DecideEdit, json.RawMessage(args)
			case "", "s", "skip":
				continue
			default:
				goto ask
			}
		}
		rs, err := jobs.Respond(ctx, d, job, []jobs.Response{r})
		if err != nil {
			return answered, err
		}
		if rs.Rejected > 0 {
			fmt.Fprintf(out, "not recorded: %s\n", rs.RejectedLines[0].Error)
			continue
		}
		answered++
	}
	return answered, ctx.Err()
}

// terminalLines reads in line by line for askTerminal, so that a prompt
// can give up on Ctrl-C while a read is blocked. The goroutine ends at the
// end of in (a terminal's ends with the process).
func terminalLines(in io.Reader) <-chan string {
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	return lines
}
