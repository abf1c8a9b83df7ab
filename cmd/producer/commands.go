package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/llmfleet/llmfleet/agent"
	"github.com/llmfleet/llmfleet/tasks"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hibiken/asynq"
	"github.com/spf13/cobra"

	"github.com/llmfleet/llmfleet/checkpoint"
	"github.com/llmfleet/llmfleet/embedded"
	"github.com/llmfleet/llmfleet/input"
	"github.com/llmfleet/llmfleet/jobs"
	"github.com/llmfleet/llmfleet/models"
	"github.com/llmfleet/llmfleet/provider"
	"github.com/llmfleet/llmfleet/redisconn"
)

type app struct {
	env      Env
	log      *slog.Logger
	redisURL string
}

func usage(format string, args ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, args...)}
}

// codeOf maps an error to an exit code: 2 for usage, 1 for the rest.
func codeOf(err error) int {
	var ue *jobs.UsageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

func newRoot(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:           "producer",
		Short:         "Submit batch LLM jobs to an llmfleet worker fleet and follow them",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usage("%v (see %s --help)", err, c.CommandPath())
	})
	root.PersistentFlags().StringVar(&a.redisURL, "redis", "", "Redis URL: redis://, rediss:// (TLS), redis-sentinel://, redis-cluster:// (default $REDIS_URL, else "+redisconn.DefaultURL+")")
	root.AddCommand(a.runCmd(), a.statusCmd(), a.exportCmd(), a.jobsCmd(), a.cancelCmd(), a.deleteCmd(),
		a.failedCmd(), a.replayCmd(), a.mergeCmd(), a.budgetCmd(), a.inboxCmd(), a.respondCmd(), a.consoleCmd())
	return root
}

// deps opens Redis, checks it answers, and builds on it what the commands
// need; closeDeps closes the connection. Every command that talks to Redis
// starts here, so a bad URL is always a usage error (exit 2) and an
// unreachable server always exit 1 with redisconn's message, which names the
// server but never its password. The asynq client and inspector share the
// connection and hold nothing of their own: asynq refuses to close them, and
// closing the connection is all there is to release.
func (a *app) deps(ctx context.Context) (d jobs.Deps, closeDeps func() error, err error) {
	url := a.redisURL
	if url == "" {
		url = a.env.Getenv("REDIS_URL")
	}
	rdb, err := redisconn.Open(url)
	if err != nil {
		return jobs.Deps{}, nil, usage("%v", err)
	}
	if err := redisconn.Ping(ctx, rdb, url); err != nil {
		rdb.Close()
		return jobs.Deps{}, nil, &exitError{code: 1, err: err}
	}
	return jobs.Deps{
		Store:     checkpoint.New(rdb),
		Client:    asynq.NewClientFromRedisClient(rdb),
		Inspector: asynq.NewInspectorFromRedisClient(rdb),
	}, rdb.Close, nil
}

func requireJob(job string) error {
	if job == "" {
		return usage("--job is required")
	}
	if err := checkpoint.ValidateJobName(job); err != nil {
		return usage("--job: %v", err)
	}
	return nil
}

type runFlags struct {
	job, model, system, template, queue, format, deadline, baseURL string
	maxAttempts, maxItemBytes, concurrency                         int
	backoffMin, backoffMax, timeout, deadlineIn, retention         time.Duration
	strict, jsonOut, jsonOutput, embedded                          bool
	simFaults                                                      string
	contextLimit, reserveOutput                                    int
	onOverflow, modelsFile, toolsFile, schemaFile                  string
	endpoint, embeddingModel                                       string
	pack                                                           int
	maxSteps, maxTranscriptBytes                                   int
	responses, onInputTimeout                                      string
	inputTimeout                                                   time.Duration
	budgetUSD                                                      float64
	budgetTokens                                                   int64
}

func (a *app) runCmd() *cobra.Command {
	var f runFlags
	c := &cobra.Command{
		Use:   "run --job NAME [flags] [FILE|-] [--responses ANSWERS.jsonl]",
		Short: "Submit a JSONL or CSV file as a job, resume it, or answer its requests (the same command)",
		Long: `Records every item of FILE in the job and enqueues one task per item that is
not done, failed or already queued. Running it again resumes: nothing done or
queued is enqueued twice; failed items are left to replay. With --responses,
the answers to requests of items waiting for a person are recorded (with or
without FILE) and the answered items resume.

Exit codes: 0 every line accepted; 3 some lines rejected, the rest enqueued;
1 nothing enqueued (strict with bad lines, every line rejected, empty file,
Redis unreachable); 2 usage error. With --embedded, the exit code is that of
status --wait (0 all done, 4 some failed, 5 expired or cancelled; 130 when
interrupted).`,
		Args: func(c *cobra.Command, args []string) error {
			switch {
			case len(args) > 1:
				return usage("run takes one FILE (or - for standard input), got %d", len(args))
			case len(args) == 0 && f.responses == "":
				return usage("run takes a FILE (or - for standard input), or --responses ANSWERS.jsonl, or both")
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			file := ""
			if len(args) == 1 {
				file = args[0]
			}
			return a.run(c, f, file)
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.job, "job", "", "job name (letters, digits, . _ -)")
	fl.StringVar(&f.model, "model", "gpt-4o-mini", "model for items that name none")
	fl.StringVar(&f.system, "system", "", "system message added to every item")
	fl.StringVar(&f.template, "template", "", "Go text/template rendering the user message from the item's fields (@FILE reads it from a file)")
	fl.BoolVar(&f.jsonOutput, "json-output", false, `ask every item for a JSON object (response_format {"type":"json_object"})`)
	fl.StringVar(&f.queue, "queue", "default", "asynq queue")
	fl.StringVar(&f.format, "format", "", "input format: jsonl, csv or openai-batch (default: from the file name, else the content; OpenAI batch lines are recognized in JSONL)")
	fl.IntVar(&f.maxAttempts, "max-attempts", 5, "provider calls per item at most, the successful one included")
	fl.DurationVar(&f.backoffMin, "backoff-min", time.Second, "shortest retry backoff")
	fl.DurationVar(&f.backoffMax, "backoff-max", time.Minute, "longest retry backoff")
	fl.DurationVar(&f.timeout, "timeout", time.Minute, "time limit of one provider call (at least 1s)")
	fl.StringVar(&f.deadline, "deadline", "", "deadline of the whole job, RFC 3339 (e.g. 2026-12-01T18:00:00Z)")
	fl.DurationVar(&f.deadlineIn, "deadline-in", 0, "deadline of the whole job, from now (e.g. 2h)")
	fl.DurationVar(&f.retention, "retention", 7*24*time.Hour, "how long job data is kept after the job ends")
	fl.BoolVar(&f.strict, "strict", false, "reject the whole file if any line is bad")
	fl.IntVar(&f.maxItemBytes, "max-item-bytes", 1<<20, "reject items larger than this")
	fl.BoolVar(&f.jsonOut, "json", false, "print the summary as JSON")
	fl.BoolVar(&f.embedded, "embedded", false, "run everything in this process (in-memory Redis, workers, and the simulator when no provider is set) and write NAME.results.jsonl and NAME.failed.csv")
	fl.IntVar(&f.concurrency, "concurrency", 0, "enqueue round trips at once (default 16); with --embedded, the worker pool size")
	fl.StringVar(&f.baseURL, "base-url", "", "with --embedded: OpenAI-compatible API base URL (default $OPENAI_BASE_URL)")
	fl.IntVar(&f.contextLimit, "context-limit", 0, "context window in tokens (default: the model table's; unknown models are not checked before the call)")
	fl.IntVar(&f.reserveOutput, "reserve-output", 512, "tokens kept for the answer when an item sets no max_tokens")
	fl.StringVar(&f.onOverflow, "on-overflow", "truncate", "a prompt over the context window: truncate (keep system messages and the last exchange, trim by tokens) or fail")
	fl.StringVar(&f.modelsFile, "models", "", "JSON file overriding the model table: {\"model\": {\"context_window\", \"max_output\", \"input_usd_per_mtok\", \"output_usd_per_mtok\"}}")
	fl.Float64Var(&f.budgetUSD, "budget-usd", 0, "pause the job when its estimated cost reaches this many dollars (0 = no budget)")
	fl.Int64Var(&f.budgetTokens, "budget-tokens", 0, "pause the job when it has used this many tokens, prompt and completion (0 = no budget)")
	fl.StringVar(&f.endpoint, "endpoint", "chat", "what plain items are: chat (prompt or messages) or embeddings (input); OpenAI batch lines say their own")
	fl.IntVar(&f.pack, "pack", 64, "embedding items: inputs sent in one request at most (OpenAI takes 2048)")
	fl.StringVar(&f.embeddingModel, "embedding-model", checkpoint.DefaultEmbeddingModel, "model for embedding items that name none")
	fl.StringVar(&f.schemaFile, "schema", "", `JSON Schema every answer must match (a schema, or {"name", "schema", "strict"}): sent as response_format json_schema and checked here`)
	fl.StringVar(&f.toolsFile, "tools", "", "JSON file of tools the model may call: every item becomes an agent run (see README, Agent items)")
	fl.IntVar(&f.maxSteps, "max-steps", checkpoint.DefaultMaxSteps, "agent items: model calls per item at most; past it the item fails max_steps")
	fl.IntVar(&f.maxTranscriptBytes, "max-transcript-bytes", checkpoint.DefaultMaxTranscriptBytes, "agent items: transcript size at most; past it the item fails too_large")
	fl.StringVar(&f.responses, "responses", "", "JSONL answers to requests waiting for a person: {\"item\", \"request\", \"decision\": approve|reject|edit|answer, \"message\", \"arguments\", \"answer\"}")
	fl.DurationVar(&f.inputTimeout, "input-timeout", 0, "agent items: how long a request waits for a person (0 = as long as the job lives)")
	fl.StringVar(&f.onInputTimeout, "on-input-timeout", "fail", "past --input-timeout: fail (class input_timeout) or reject (the model is told no one answered)")
	fl.StringVar(&f.simFaults, "sim-faults", "", "with --embedded and the simulator: random fault mix (default "+embedded.DemoFaults+"; none for no faults)")
	return c
}

func (a *app) run(c *cobra.Command, f runFlags, file string) error {
	ctx := c.Context()
	if err := requireJob(f.job); err != nil {
		return err
	}
	pol := checkpoint.Policy{
		Model: f.model, System: f.system, JSONOutput: f.jsonOutput, Queue: f.queue,
		MaxAttempts: f.maxAttempts, BackoffMin: f.backoffMin, BackoffMax: f.backoffMax,
		Timeout: f.timeout, Retention: f.retention,
		ContextLimit: f.contextLimit, ReserveOutput: f.reserveOutput, OnOverflow: checkpoint.Overflow(f.onOverflow),
		BudgetUSD: f.budgetUSD, BudgetTokens: f.budgetTokens,
	}
	switch f.endpoint {
	case "chat":
	case tasks.EndpointEmbeddings:
		pol.Endpoint = tasks.EndpointEmbeddings
	default:
		return usage("--endpoint must be chat or embeddings, got %q", f.endpoint)
	}
	if c.Flags().Changed("pack") || pol.Endpoint != "" {
		pol.Pack = f.pack
	}
	if c.Flags().Changed("embedding-model") {
		pol.EmbeddingModel = f.embeddingModel
	}
	if f.schemaFile != "" {
		if f.jsonOutput {
			return usage("--schema and --json-output are exclusive: a schema already asks for JSON")
		}
		b, err := os.ReadFile(f.schemaFile)
		if err != nil {
			return usage("--schema: %v", err)
		}
		js, err := input.SchemaFile(b, f.schemaFile)
		if err != nil {
			return usage("--schema %s: %v", f.schemaFile, err)
		}
		pol.Schema = js
	}
	if f.toolsFile != "" {
		b, err := os.ReadFile(f.toolsFile)
		if err != nil {
			return usage("--tools: %v", err)
		}
		tools, err := agent.ParseTools(b)
		if err != nil {
			return usage("--tools %s: %v", f.toolsFile, err)
		}
		pol.Tools = tools
	}
	if pol.Agent() || c.Flags().Changed("max-steps") || c.Flags().Changed("max-transcript-bytes") {
		pol.MaxSteps, pol.MaxTranscriptBytes = f.maxSteps, f.maxTranscriptBytes
	}
	if pol.Agent() || c.Flags().Changed("input-timeout") || c.Flags().Changed("on-input-timeout") {
		pol.InputTimeout, pol.OnInputTimeout = f.inputTimeout, checkpoint.InputTimeoutDo(f.onInputTimeout)
	}
	if f.modelsFile != "" {
		fh, err := os.Open(f.modelsFile)
		if err != nil {
			return usage("--models: %v", err)
		}
		t, err := models.Load(fh)
		fh.Close()
		if err != nil {
			return usage("--models %s: %v", f.modelsFile, err)
		}
		pol.Models = t
	}
	if strings.HasPrefix(f.template, "@") {
		b, err := os.ReadFile(f.template[1:])
		if err != nil {
			return usage("--template: %v", err)
		}
		pol.Template = string(b)
	} else {
		pol.Template = f.template
	}
	var err error
	if pol.Deadline, err = parseDeadline(f.deadline, f.deadlineIn); err != nil {
		return err
	}
	if err := pol.Validate(); err != nil {
		return &exitError{code: 2, err: err}
	}
	var format input.Format
	switch f.format {
	case "", "jsonl", "csv", "openai-batch":
		format = input.Format(f.format)
	default:
		return usage("--format must be jsonl, csv or openai-batch, got %q", f.format)
	}
	if f.maxItemBytes < 1 {
		return usage("--max-item-bytes must be positive, got %d", f.maxItemBytes)
	}
	var responses []jobs.Response
	var badResponses []input.Rejection
	if f.responses != "" {
		fh, err := os.Open(f.responses)
		if err != nil {
			return &exitError{code: 1, err: fmt.Errorf("open responses: %w", err)}
		}
		responses, badResponses, err = jobs.ReadResponses(fh)
		fh.Close()
		if err != nil {
			return &exitError{code: 1, err: err}
		}
	}
	var in io.Reader
	name := ""
	switch file {
	case "":
	case "-":
		in, name = a.env.Stdin, "stdin"
	default:
		fh, err := os.Open(file)
		if err != nil {
			return &exitError{code: 1, err: fmt.Errorf("open input: %w", err)}
		}
		defer fh.Close()
		in, name = fh, file
	}
	changed := func(flag string) bool { return c.Flags().Changed(strings.TrimPrefix(flag, "--")) }
	so := jobs.SubmitOptions{
		Job: f.job, Input: in, InputName: name, Format: format, Policy: pol, Changed: changed,
		MaxItemBytes: f.maxItemBytes, Strict: f.strict, Concurrency: f.concurrency,
	}
	if f.embedded {
		if in == nil {
			return usage("run --embedded needs the job's FILE: nothing of an embedded job outlives its process but its files")
		}
		return a.runEmbedded(ctx, f, so, responses, badResponses, file != "-")
	}
	d, closeDeps, err := a.deps(ctx)
	if err != nil {
		return err
	}
	defer closeDeps()
	var sum jobs.Summary
	if in != nil {
		sum, err = jobs.Submit(ctx, d, so)
		if err != nil || f.responses == "" {
			a.printSummary(f.jsonOut, sum)
		}
		if err != nil {
			return err
		}
	}
	if f.responses != "" {
		rs, err := jobs.Respond(ctx, d, f.job, responses)
		rs.Rejected += len(badResponses)
		rs.RejectedLines = jobs.SortRejections(append(rs.RejectedLines, badResponses...))
		sum.Job, sum.Responses = f.job, &rs
		if in == nil {
			a.printResponses(f.jsonOut, f.job, rs)
		} else {
			a.printSummary(f.jsonOut, sum)
			if !f.jsonOut {
				jobs.PrintResponses(a.env.Stdout, rs)
			}
		}
		if err != nil {
			return err
		}
		if rs.Rejected > 0 {
			return &exitError{code: 3}
		}
	}
	if sum.Rejected > 0 {
		return &exitError{code: 3}
	}
	return nil
}

func (a *app) printResponses(asJSON bool, job string, rs jobs.RespondSummary) {
	if asJSON {
		b, _ := json.Marshal(struct {
			Job string `json:"job"`
			jobs.RespondSummary
		}{job, rs})
		fmt.Fprintln(a.env.Stdout, string(b))
		return
	}
	jobs.PrintResponses(a.env.Stdout, rs)
}

// parseDeadline reads --deadline (RFC 3339) or --deadline-in (from now);
// zero when neither is set.
func parseDeadline(at string, in time.Duration) (time.Time, error) {
	switch {
	case at != "" && in != 0:
		return time.Time{}, usage("--deadline and --deadline-in are exclusive")
	case at != "":
		t, err := time.Parse(time.RFC3339, at)
		if err != nil {
			return time.Time{}, usage("--deadline %q is not an RFC 3339 time (e.g. 2026-12-01T18:00:00Z)", at)
		}
		return t.UTC(), nil
	case in < 0:
		return time.Time{}, usage("--deadline-in must be positive, got %s", in)
	case in > 0:
		return time.Now().Add(in).UTC().Truncate(time.Millisecond), nil
	}
	return time.Time{}, nil
}

func (a *app) printSummary(asJSON bool, s jobs.Summary) {
	if s.Job == "" {
		return
	}
	if asJSON {
		b, _ := json.Marshal(s)
		fmt.Fprintln(a.env.Stdout, string(b))
		return
	}
	jobs.PrintSummary(a.env.Stdout, s)
}

func (a *app) runEmbedded(ctx context.Context, f runFlags, so jobs.SubmitOptions, responses []jobs.Response, badResponses []input.Rejection, stdinFree bool) error {
	base := f.baseURL
	if base == "" {
		base = a.env.Getenv("OPENAI_BASE_URL")
	}
	out, err := embedded.Run(ctx, embedded.Options{
		Submit:          so,
		Concurrency:     f.concurrency,
		Provider:        provider.Config{BaseURL: base, APIKey: a.env.Getenv("OPENAI_API_KEY")},
		SimulatorFaults: f.simFaults,
		Stdout:          a.env.Stdout,
		Stderr:          a.env.Stderr,
		TTY:             a.env.TTY,
		JSON:            f.jsonOut,
		Logger:          a.log,
		Responses:       responses,
		BadResponses:    badResponses,
		Stdin:           a.env.Stdin,
		Ask:             a.env.Interactive && stdinFree,
	})
	if err != nil {
		return err
	}
	if code := out.ExitCode(); code != 0 {
		return &exitError{code: code}
	}
	return nil
}

func (a *app) statusCmd() *cobra.Command {
	var job string
	var asJSON, watch, wait bool
	var interval time.Duration
	c := &cobra.Command{
		Use:   "status --job NAME [--json] [--watch] [--wait]",
		Short: "Show a job's counts and state",
		Long: `Shows one consistent snapshot of the job. --watch shows live progress until
the job ends; --wait blocks until it ends and exits 0 if every item is done,
4 if some failed, 5 if it expired or was cancelled.`,
		Args: cobra.NoArgs,
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
			if !watch && !wait {
				s, err := jobs.Load(ctx, d.Store, job)
				if err != nil {
					return err
				}
				a.printStatus(asJSON, s)
				return nil
			}
			var tick func(jobs.Status)
			var prog *jobs.Progress
			if watch {
				prog = jobs.NewProgress(a.env.Stderr, a.env.TTY)
				tick = prog.Update
			}
			s, err := jobs.Wait(ctx, d.Store, job, interval, tick)
			if err != nil {
				return err
			}
			if prog != nil {
				prog.Finish(s)
			}
			if asJSON || !watch {
				a.printStatus(asJSON, s)
			}
			if wait {
				if code := s.ExitCode(); code != 0 {
					return &exitError{code: code}
				}
			}
			return nil
		},
	}
	c.Flags().StringVar(&job, "job", "", "job name")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	c.Flags().BoolVar(&watch, "watch", false, "show live progress until the job ends")
	c.Flags().BoolVar(&wait, "wait", false, "block until the job ends; exit 0 all done, 4 some failed, 5 expired or cancelled")
	c.Flags().DurationVar(&interval, "interval", time.Second, "how often --watch and --wait look")
	return c
}

func (a *app) printStatus(asJSON bool, s jobs.Status) {
	if asJSON {
		b, _ := json.Marshal(s)
		fmt.Fprintln(a.env.Stdout, string(b))
		return
	}
	fmt.Fprintln(a.env.Stdout, s.Line())
}

func (a *app) exportCmd() *cobra.Command {
	var job, out, failed, transcripts, format, errorsFile string
	c := &cobra.Command{
		Use:   "export --job NAME [--out FILE|-] [--failed FILE.csv] [--transcripts FILE.jsonl] [--format openai-batch [--errors FILE]]",
		Short: "Write results as JSONL in input order, and failed items as CSV",
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
			switch format {
			case "", "jsonl":
			case "openai-batch":
				return a.exportBatch(ctx, d, job, out, errorsFile)
			default:
				return usage("--format must be jsonl or openai-batch, got %q", format)
			}
			if errorsFile != "" {
				return usage("--errors goes with --format openai-batch (else use --failed FILE.csv)")
			}
			w, closeOut, err := a.output(out)
			if err != nil {
				return err
			}
			n, err := jobs.ExportResults(ctx, d.Store, job, w)
			if cerr := closeOut(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(a.env.Stderr, "exported %d results\n", n)
			if failed != "" {
				w, closeF, err := a.output(failed)
				if err != nil {
					return err
				}
				n, err := jobs.ExportFailed(ctx, d.Store, job, w)
				if cerr := closeF(); err == nil {
					err = cerr
				}
				if err != nil {
					return err
				}
				fmt.Fprintf(a.env.Stderr, "exported %d failed items to %s\n", n, failed)
			}
			if transcripts != "" {
				w, closeT, err := a.output(transcripts)
				if err != nil {
					return err
				}
				n, err := jobs.ExportTranscripts(ctx, d.Store, job, w)
				if cerr := closeT(); err == nil {
					err = cerr
				}
				if err != nil {
					return err
				}
				fmt.Fprintf(a.env.Stderr, "exported %d transcripts to %s\n", n, transcripts)
			}
			return nil
		},
	}
	c.Flags().StringVar(&job, "job", "", "job name")
	c.Flags().StringVar(&out, "out", "-", "results file (- for standard output)")
	c.Flags().StringVar(&format, "format", "jsonl", "jsonl (llmfleet's result lines) or openai-batch (OpenAI's batch output format)")
	c.Flags().StringVar(&errorsFile, "errors", "", "with --format openai-batch: write failed items here (default: with the results)")
	c.Flags().StringVar(&transcripts, "transcripts", "", "also write each finished item's messages and steps as JSONL {id, status, messages} (agent items)")
	c.Flags().StringVar(&failed, "failed", "", "also write failed items to this CSV file")
	return c
}

// exportBatch writes the job in OpenAI's batch output format.
func (a *app) exportBatch(ctx context.Context, d jobs.Deps, job, out, errorsFile string) error {
	w, closeOut, err := a.output(out)
	if err != nil {
		return err
	}
	var ew io.Writer
	closeErr := func() error { return nil }
	if errorsFile != "" {
		if ew, closeErr, err = a.output(errorsFile); err != nil {
			closeOut()
			return err
		}
	}
	done, failed, err := jobs.ExportOpenAIBatch(ctx, d.Store, job, w, ew)
	if cerr := closeOut(); err == nil {
		err = cerr
	}
	if cerr := closeErr(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	where := "with them"
	if errorsFile != "" {
		where = "to " + errorsFile
	}
	fmt.Fprintf(a.env.Stderr, "exported %d results and %d failed items (%s) in OpenAI's batch output format\n", done, failed, where)
	return nil
}

func (a *app) output(path string) (io.Writer, func() error, error) {
	if path == "-" || path == "" {
		return a.env.Stdout, func() error { return nil }, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, nil, &exitError{code: 1, err: err}
	}
	return f, f.Close, nil
}

func (a *app) jobsCmd() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "jobs [--json]",
		Short: "List jobs",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			ctx := c.Context()
			d, closeDeps, err := a.deps(ctx)
			if err != nil {
				return err
			}
			defer closeDeps()
			js, err := d.Store.Jobs(ctx)
			if err != nil {
				return err
			}
			list := make([]jobs.Status, 0, len(js))
			for _, j := range js {
				list = append(list, jobs.NewStatus(j))
			}
			if asJSON {
				b, _ := json.Marshal(list)
				fmt.Fprintln(a.env.Stdout, string(b))
				return nil
			}
			tw := tabwriter.NewWriter(a.env.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "JOB\tSTATE\tTOTAL\tDONE\tFAILED\tPENDING\tACTIVE")
			for _, s := range list {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\n", s.Job, s.State, s.Total, s.Done, s.Failed, s.Pending, s.Active)
			}
			return tw.Flush()
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func (a *app) cancelCmd() *cobra.Command {
	var job string
	c := &cobra.Command{
		Use:   "cancel --job NAME",
		Short: "Cancel a job: remaining items end cancelled, no further provider calls",
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
			n, err := jobs.Cancel(ctx, d.Store, job)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.env.Stdout, "job %s cancelled: %d pending items ended cancelled; items in flight end after their current call\n", job, n)
			return nil
		},
	}
	c.Flags().StringVar(&job, "job", "", "job name")
	return c
}

func (a *app) deleteCmd() *cobra.Command {
	var job string
	c := &cobra.Command{
		Use:   "delete --job NAME",
		Short: "Delete a job's state and its queued tasks",
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
			n, err := jobs.Delete(ctx, d, job)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.env.Stdout, "job %s deleted (%d queued tasks removed)\n", job, n)
			return nil
		},
	}
	c.Flags().StringVar(&job, "job", "", "job name")
	return c
}

func (a *app) budgetCmd() *cobra.Command {
	var job string
	var usd float64
	var tok int64
	c := &cobra.Command{
		Use:   "budget --job NAME [--budget-usd X] [--budget-tokens N]",
		Short: "Change a job's budget; a job paused by its budget resumes when the new one allows more",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := requireJob(job); err != nil {
				return err
			}
			var ch jobs.BudgetChange
			if c.Flags().Changed("budget-usd") {
				ch.USD = &usd
			}
			if c.Flags().Changed("budget-tokens") {
				ch.Tokens = &tok
			}
			if ch.USD == nil && ch.Tokens == nil {
				return usage("budget needs --budget-usd or --budget-tokens (0 removes a budget)")
			}
			ctx := c.Context()
			d, closeDeps, err := a.deps(ctx)
			if err != nil {
				return err
			}
			defer closeDeps()
			resumed, err := jobs.SetBudget(ctx, d, job, ch)
			if err != nil {
				return err
			}
			s, err := jobs.Load(ctx, d.Store, job)
			if err != nil {
				return err
			}
			msg := "budget updated"
			if resumed {
				msg = "budget updated: job resumed"
			} else if s.State == "paused" {
				msg = "budget updated, still paused: " + s.PausedReason
			}
			fmt.Fprintf(a.env.Stdout, "%s: %s (spent $%.4f estimated, %d tokens)\n", job, msg, s.CostUSD, s.TokensIn+s.TokensOut)
			return nil
		},
	}
	c.Flags().StringVar(&job, "job", "", "job name")
	c.Flags().Float64Var(&usd, "budget-usd", 0, "new cost budget in dollars (0 = none)")
	c.Flags().Int64Var(&tok, "budget-tokens", 0, "new token budget (0 = none)")
	return c
}
