package main

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/llmfleet/llmfleet/jobs"
	"github.com/llmfleet/llmfleet/provider"
)

func (a *app) failedCmd() *cobra.Command {
	var job, class string
	var asJSON bool
	c := &cobra.Command{
		Use:   "failed --job NAME [--class C] [--json]",
		Short: "List failed items with their class and reason, and a count per class",
		Long: `Lists the job's failed items from its checkpoint, which keeps every failure
(asynq's archive keeps at most 9,999 tasks per queue). --json prints one
object: {"job", "counts": {class: n}, "items": [{id, class, reason, attempts,
status, first_failed_at, last_failed_at}]}.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := requireJob(job); err != nil {
				return err
			}
			if class != "" && !provider.Class(class).Valid() {
				return usage("--class %q is not an error class (one of %s)", class, classList())
			}
			ctx := c.Context()
			d, closeDeps, err := a.deps(ctx)
			if err != nil {
				return err
			}
			defer closeDeps()
			counts := map[string]int{}
			out := a.env.Stdout
			if asJSON {
				// Streamed by hand so memory does not grow with the job.
				fmt.Fprintf(out, `{"job":%q,"items":[`, job)
				first := true
				err = jobs.WalkFailed(ctx, d.Store, job, class, func(fi jobs.FailedItem) error {
					counts[fi.Class]++
					b, _ := json.Marshal(fi)
					if !first {
						fmt.Fprint(out, ",")
					}
					first = false
					_, err := out.Write(b)
					return err
				})
				if err != nil {
					return err
				}
				b, _ := json.Marshal(counts)
				fmt.Fprintf(out, `],"counts":%s}`+"\n", b)
				return nil
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tCLASS\tATTEMPTS\tREASON")
			err = jobs.WalkFailed(ctx, d.Store, job, class, func(fi jobs.FailedItem) error {
				counts[fi.Class]++
				_, err := fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", fi.ID, fi.Class, fi.Attempts, oneLine(fi.Reason, 120))
				return err
			})
			if err != nil {
				return err
			}
			tw.Flush()
			total := 0
			var parts []string
			for k, v := range counts {
				parts = append(parts, fmt.Sprintf("%s %d", k, v))
				total += v
			}
			sort.Strings(parts)
			fmt.Fprintf(out, "%d failed items: %s\n", total, strings.Join(parts, ", "))
			return nil
		},
	}
	c.Flags().StringVar(&job, "job", "", "job name")
	c.Flags().StringVar(&class, "class", "", "only this error class")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func classList() string {
	var s []string
	for _, c := range append(slices.Clone(provider.Classes), provider.AgentClasses...) {
		s = append(s, string(c))
	}
	return strings.Join(s, ", ")
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func (a *app) replayCmd() *cobra.Command {
	var job, class, edit, deadline string
	var items []string
	var all, asJSON bool
	var deadlineIn time.Duration
	c := &cobra.Command{
		Use:   "replay --job NAME (--item ID ... | --class C | --all) [--edit FILE.jsonl]",
		Short: "Put failed items back to work with a fresh attempt budget",
		Long: `Replays failed items: each goes from failed back to pending with a fresh
attempt budget, and its task is run from asynq's archive when it is still
there, or enqueued again from the stored input when asynq has dropped it.
Replaying an item that is not failed does nothing, so replaying twice never
processes an item twice.

--edit FILE.jsonl replaces the stored input of the items it holds (same id)
and replays them: fix a bad prompt and rerun only what failed. Running an
archived task from asynqmon (or asynq's Inspector) does the same as replay
for that item.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := requireJob(job); err != nil {
				return err
			}
			if class != "" && !provider.Class(class).Valid() {
				return usage("--class %q is not an error class (one of %s)", class, classList())
			}
			o := jobs.ReplayOptions{Job: job, Items: items, Class: class, All: all}
			var err error
			if o.Deadline, err = parseDeadline(deadline, deadlineIn); err != nil {
				return err
			}
			if edit != "" {
				f, err := os.Open(edit)
				if err != nil {
					return usage("--edit: %v", err)
				}
				defer f.Close()
				o.Edit, o.EditName = f, edit
			}
			ctx := c.Context()
			d, closeDeps, err := a.deps(ctx)
			if err != nil {
				return err
			}
			defer closeDeps()
			sum, err := jobs.Replay(ctx, d, o)
			if err != nil {
				return err
			}
			if asJSON {
				b, _ := json.Marshal(sum)
				fmt.Fprintln(a.env.Stdout, string(b))
				return nil
			}
			if sum.Edited > 0 {
				fmt.Fprintf(a.env.Stdout, "edited %d items\n", sum.Edited)
			}
			fmt.Fprintf(a.env.Stdout, "replayed %d failed items of job %s: %d run from asynq's archive, %d enqueued again, %d already queued\n",
				sum.Replayed, job, sum.FromArchive, sum.Reenqueued, sum.AlreadyQueued)
			for _, s := range sum.Skipped {
				fmt.Fprintf(a.env.Stdout, "  %s: %s\n", s.ID, s.Reason)
			}
			return nil
		},
	}
	c.Flags().StringVar(&job, "job", "", "job name")
	c.Flags().StringArrayVar(&items, "item", nil, "replay this item (repeatable)")
	c.Flags().StringVar(&class, "class", "", "replay the failed items of this error class")
	c.Flags().BoolVar(&all, "all", false, "replay every failed item")
	c.Flags().StringVar(&edit, "edit", "", "replace the stored input of the items in this JSONL file, then replay them")
	c.Flags().StringVar(&deadline, "deadline", "", "new job deadline, RFC 3339 (an expired job needs one)")
	c.Flags().DurationVar(&deadlineIn, "deadline-in", 0, "new job deadline, from now")
	c.Flags().BoolVar(&asJSON, "json", false, "print the summary as JSON")
	return c
}

func (a *app) mergeCmd() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "merge OUT FILE...",
		Short: "Merge result (.jsonl) and failed-item (.csv) files into one clean file",
		Long: `Combines results files and failed-item files from several interrupted runs or
jobs into OUT (JSONL): one line per id, a success beats a failure, the newest
success (finished_at) wins, and ids keep the order they first appear in,
across the files in the order given. Failures that no success supersedes go
to OUT's .failed.csv sibling. Needs no Redis.`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) < 2 {
				return usage("merge needs OUT and at least one FILE")
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			sum, err := jobs.Merge(args[0], args[1:])
			if err != nil {
				return err
			}
			if asJSON {
				b, _ := json.Marshal(sum)
				fmt.Fprintln(a.env.Stdout, string(b))
				return nil
			}
			fmt.Fprintf(a.env.Stdout, "merged %d files into %s: %d results, %d failures kept; dropped %d older results, %d failures superseded by a success, %d repeated failures\n",
				sum.Files, sum.ResultsFile, sum.Results, sum.Failures, sum.OlderResultsDropped, sum.FailuresSuperseded, sum.DuplicateFailuresDropped)
			if sum.FailedFile != "" {
				fmt.Fprintf(a.env.Stdout, "failures: %s\n", sum.FailedFile)
			}
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print the summary as JSON")
	return c
}
