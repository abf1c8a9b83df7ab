package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/llmfleet/llmfleet/agent"
	"github.com/llmfleet/llmfleet/jobs"
)

func (a *app) inboxCmd() *cobra.Command {
	var job string
	var asJSON bool
	c := &cobra.Command{
		Use:   "inbox --job NAME [--json]",
		Short: "List the requests of items waiting for a person: item, request, tool, arguments or question, since",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := requireJob(job); err != nil {
				return err
			}
			ctx := c.Context()
			d, closeDeps, err := a.deps(ctx)
			if err != nil {
				return err
			}
			defer closeDeps()
			entries, err := jobs.Inbox(ctx, d.Store, job)
			if err != nil {
				return err
			}
			if asJSON {
				if entries == nil {
					entries = []jobs.InboxEntry{}
				}
				b, _ := json.Marshal(struct {
					Job      string            `json:"job"`
					Waiting  int               `json:"waiting"`
					Requests []jobs.InboxEntry `json:"requests"`
				}{job, len(entries), entries})
				fmt.Fprintln(a.env.Stdout, string(b))
				return nil
			}
			if len(entries) == 0 {
				fmt.Fprintf(a.env.Stdout, "nothing in job %s waits for a person\n", job)
				return nil
			}
			tw := tabwriter.NewWriter(a.env.Stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ITEM\tREQUEST\tKIND\tTOOL\tARGUMENTS OR QUESTION\tWAITING")
			for _, e := range entries {
				what := string(e.Arguments)
				if e.Kind == agent.KindQuestion {
					what = e.Question
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.Item, e.ID, e.Kind, e.Tool, oneLine(what, 80), time.Since(e.Since).Round(time.Second))
			}
			tw.Flush()
			fmt.Fprintf(a.env.Stdout, "\nanswer with: producer respond --job %s --item ID [--request RID] (--approve | --reject [--message TEXT] | --edit JSON | --answer TEXT)\n", job)
			fmt.Fprintf(a.env.Stdout, "or many at once: producer run --job %s --responses ANSWERS.jsonl\n", job)
			return nil
		},
	}
	c.Flags().StringVar(&job, "job", "", "job name")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func (a *app) respondCmd() *cobra.Command {
	var job, item, request, message, edit, answer string
	var approve, reject, asJSON bool
	c := &cobra.Command{
		Use:   "respond --job NAME --item ID [--request RID] (--approve | --reject [--message TEXT] | --edit JSON | --answer TEXT)",
		Short: "Answer one request of an item waiting for a person; the item resumes once all its requests are answered",
		Long: `Records one decision for a request listed by inbox. --request may be left out
when the item has one request waiting. Exit codes: 0 recorded (or already
answered, which changes nothing), 3 the answer does not fit the request.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := requireJob(job); err != nil {
				return err
			}
			if item == "" {
				return usage("--item is required")
			}
			r := jobs.Response{Item: item, Request: request, Line: 1, Source: "respond"}
			var set []string
			if approve {
				r.Decision, set = agent.DecideApprove, append(set, "--approve")
			}
			if reject {
				r.Decision, set = agent.DecideReject, append(set, "--reject")
				r.Message = message
			}
			if c.Flags().Changed("edit") {
				r.Decision, set = agent.DecideEdit, append(set, "--edit")
				if !json.Valid([]byte(edit)) {
					return usage("--edit must be the new arguments as JSON, got %q", edit)
				}
				r.Arguments = json.RawMessage(edit)
			}
			if c.Flags().Changed("answer") {
				r.Decision, set = agent.DecideAnswer, append(set, "--answer")
				r.Answer = &answer
			}
			if len(set) != 1 {
				return usage("give exactly one of --approve, --reject, --edit or --answer, got %s", strings.Join(append(set, "none")[:max(len(set), 1)], " "))
			}
			if message != "" && !reject {
				return usage("--message goes with --reject")
			}
			ctx := c.Context()
			d, closeDeps, err := a.deps(ctx)
			if err != nil {
				return err
			}
			defer closeDeps()
			rs, err := jobs.Respond(ctx, d, job, []jobs.Response{r})
			if err != nil {
				return err
			}
			if asJSON {
				a.printResponses(true, job, rs)
			} else {
				switch {
				case rs.Rejected > 0:
					fmt.Fprintf(a.env.Stderr, "not recorded: %s\n", rs.RejectedLines[0].Error)
				case rs.AlreadyAnswered > 0:
					fmt.Fprintln(a.env.Stdout, strings.TrimPrefix(rs.Notes[0], "respond: "))
				case rs.Resumed > 0:
					fmt.Fprintf(a.env.Stdout, "recorded: item %s has every answer it waited for and resumes\n", item)
				default:
					fmt.Fprintf(a.env.Stdout, "recorded: item %s still waits for its other requests (producer inbox --job %s)\n", item, job)
				}
			}
			if rs.Rejected > 0 {
				return &exitError{code: 3}
			}
			return nil
		},
	}
	fl := c.Flags()
	fl.StringVar(&job, "job", "", "job name")
	fl.StringVar(&item, "item", "", "the item's id")
	fl.StringVar(&request, "request", "", "the request's id (from inbox); may be left out when the item has one request waiting")
	fl.BoolVar(&approve, "approve", false, "run the tool call as the model asked")
	fl.BoolVar(&reject, "reject", false, "do not run it: the model is told \"rejected by a person: MESSAGE\"")
	fl.StringVar(&message, "message", "", "with --reject: why, for the model")
	fl.StringVar(&edit, "edit", "", "run it with these arguments instead (JSON, checked against the tool's parameters)")
	fl.StringVar(&answer, "answer", "", "the answer to a question (executor human tools)")
	fl.BoolVar(&asJSON, "json", false, "print JSON")
	return c
}
