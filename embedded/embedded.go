// Package embedded runs the whole fleet in one process: an in-memory Redis
// (miniredis), a pool of workers and, when no provider is configured, the
// simulator. It is `producer run --embedded`, the README's first command:
// a newcomer sees a job finish, with retries, on a machine with nothing
// installed.
//
// Nothing survives the process but the files it writes: NAME.results.jsonl
// and NAME.failed.csv. A rerun after an interruption (Ctrl-C) reads the
// results file first and records those items as done, so they are neither
// called again nor lost from the new file.
//
// miniredis serves asynq well in-process (DESIGN.md measured about 3k
// tasks/s) as long as its TTL clock runs, hence ClockTTL(true).
package embedded

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/llmfleet/llmfleet/agent"
	"github.com/llmfleet/llmfleet/breaker"
	"github.com/llmfleet/llmfleet/checkpoint"
	"github.com/llmfleet/llmfleet/input"
	"github.com/llmfleet/llmfleet/jobs"
	"github.com/llmfleet/llmfleet/provider"
	"github.com/llmfleet/llmfleet/simulator"
	"github.com/llmfleet/llmfleet/worker"
)

// DemoFaults is the light random fault mix of the embedded simulator, so a
// demo shows retries without failing items.
const DemoFaults = "429=0.02,500=0.02,529=0.01,html502=0.01"

// Options configure an embedded run.
type Options struct {
	Submit jobs.SubmitOptions
	// Dir is where NAME.results.jsonl and NAME.failed.csv go. Default ".".
	Dir string
	// Concurrency of the in-process worker pool. Default 16.
	Concurrency int
	// Provider is the provider to call. With neither BaseURL nor APIKey set,
	// the simulator is started in-process.
	Provider provider.Config
	// SimulatorFaults overrides DemoFaults ("" keeps it; "none" disables).
	SimulatorFaults string
	Stdout, Stderr  io.Writer
	// TTY selects the live progress bar.
	TTY bool
	// JSON prints the run summary as JSON.
	JSON bool
	// Logger receives worker logs. Default: discard.
	Logger *slog.Logger
	// Responses answer requests of items parked by an earlier run (read
	// from NAME.awaiting.jsonl); BadResponses are the lines of the
	// responses file that could not be read.
	Responses    []jobs.Response
	BadResponses []input.Rejection
	// Ask asks a person at the terminal (Stdin, Stderr) for what waits
	// for them, once nothing else is left to do.
	Ask   bool
	Stdin io.Reader
}

// Outcome is what the run produced.
type Outcome struct {
	Summary     jobs.Summary
	Status      jobs.Status
	ResultsFile string
	FailedFile  string
	// TranscriptsFile is NAME.transcripts.jsonl, written for agent jobs.
	TranscriptsFile string
	// AwaitingFile is NAME.awaiting.jsonl: the requests still waiting for
	// a person, with what their items need to resume in a rerun.
	AwaitingFile string
	// Responses is what the run's --responses did.
	Responses   *jobs.RespondSummary
	Interrupted bool
}

// ExitInterrupted is the exit code after Ctrl-C, as shells expect.
const ExitInterrupted = 130

// Run runs the job to its end (or until ctx is cancelled), writes the
// result files and returns the outcome.
func Run(ctx context.Context, o Options) (Outcome, error) {
	var out Outcome
	if o.Dir == "" {
		o.Dir = "."
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 16
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	job := o.Submit.Job
	if err := checkpoint.ValidateJobName(job); err != nil {
		return out, &jobs.UsageError{Msg: "--job: " + err.Error()}
	}
	out.ResultsFile = filepath.Join(o.Dir, job+".results.jsonl")
	out.FailedFile = filepath.Join(o.Dir, job+".failed.csv")

	out.AwaitingFile = filepath.Join(o.Dir, job+".awaiting.jsonl")

	prior, err := readPrior(out.ResultsFile)
	if err != nil {
		return out, err
	}
	o.Submit.Prior = prior
	if o.Submit.Parked, err = readAwaiting(out.AwaitingFile); err != nil {
		return out, err
	}

	mr := miniredis.NewMiniRedis()
	mr.ClockTTL(true)
	if err := mr.StartAddr("127.0.0.1:0"); err != nil {
		return out, fmt.Errorf("start in-memory redis: %w", err)
	}
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()

	usesDemo := false
	if len(o.Submit.Policy.Tools) == 0 {
		if rs, ok := o.Submit.Input.(io.ReadSeeker); ok {
			uses := namesTools(rs)
			if _, err := rs.Seek(0, io.SeekStart); err != nil {
				return out, fmt.Errorf("rewind input: %w", err)
			}
			if uses {
				usesDemo = true
				o.Submit.Policy.Tools = DemoTools()
				if o.Submit.Policy.MaxSteps == 0 {
					o.Submit.Policy.MaxSteps = checkpoint.DefaultMaxSteps
				}
				if o.Submit.Policy.MaxTranscriptBytes == 0 {
					o.Submit.Policy.MaxTranscriptBytes = checkpoint.DefaultMaxTranscriptBytes
				}
				fmt.Fprintf(o.Stderr, "items name tools and no --tools file was given: the built-in demo tools %v answer them\n", agent.Names(o.Submit.Policy.Tools))
			}
		}
	}
	if o.Submit.Policy.Agent() {
		out.TranscriptsFile = filepath.Join(o.Dir, job+".transcripts.jsonl")
	}
	// The demo's Go tools answer only the demo's tools: a user's tool file
	// with a check_disk of its own must not get the demo's answers.
	var demoFuncs map[string]agent.Func
	if usesDemo {
		demoFuncs = DemoFuncs()
	}

	pc := o.Provider
	var brk breaker.Settings
	if pc.BaseURL == "" && pc.APIKey == "" {
		// The simulator's faults are random: should a run of them trip the
		// breaker, the demo recovers in seconds, not minutes.
		brk.Cooldown = 5 * time.Second
		faults := o.SimulatorFaults
		switch faults {
		case "":
			faults = DemoFaults
		case "none":
			faults = ""
		}
		sim, err := simulator.Start(ctx, simulator.Config{Latency: "5ms-40ms", Faults: faults}, "127.0.0.1:0")
		if err != nil {
			return out, fmt.Errorf("start simulator: %w", err)
		}
		defer sim.Close()
		pc.BaseURL = sim.URL()
		mix := "random faults " + faults
		if faults == "" {
			mix = "no random faults"
		}
		fmt.Fprintf(o.Stderr, "no OPENAI_API_KEY or OPENAI_BASE_URL: calling the built-in simulator at %s (%s)\n", sim.URL(), mix)
	}
	pc.Concurrency = o.Concurrency

	w, err := worker.New(rdb, worker.Config{
		Concurrency:     o.Concurrency,
		Queues:          map[string]int{o.Submit.Policy.Queue: 1},
		ShutdownTimeout: 5 * time.Second,
		CheckInterval:   time.Second,
		Provider:        pc,
		Logger:          o.Logger,
		Breaker:         brk,
		Tools:           demoFuncs,
	})
	if err != nil {
		return out, err
	}
	if err := w.Start(); err != nil {
		return out, err
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			w.Shutdown()
		}
	}
	defer stop()

	client := asynq.NewClientFromRedisClient(rdb)
	defer client.Close()
	store := checkpoint.New(rdb)
	deps := jobs.Deps{Store: store, Client: client, Inspector: asynq.NewInspectorFromRedisClient(rdb)}
	out.Summary, err = jobs.Submit(ctx, deps, o.Submit)
	printSummary(o, out.Summary)
	if err != nil && !(out.Summary.Total > 0 && errors.Is(err, jobs.ErrNothingEnqueued)) {
		return out, err
	}
	if len(o.Responses) > 0 || len(o.BadResponses) > 0 {
		rs, err := jobs.Respond(ctx, deps, job, o.Responses)
		if err != nil {
			return out, err
		}
		rs.Rejected += len(o.BadResponses)
		rs.RejectedLines = jobs.SortRejections(append(rs.RejectedLines, o.BadResponses...))
		out.Responses = &rs
		jobs.PrintResponses(o.Stderr, rs)
	}

	prog := jobs.NewProgress(o.Stderr, o.TTY)
	st, waitErr := jobs.Wait(ctx, store, job, 250*time.Millisecond, prog.Update)
	var lines <-chan string
	for waitErr == nil && st.OnlyPeople() && o.Ask && o.Stdin != nil {
		// Everything else is finished: ask the person at the terminal.
		if lines == nil {
			lines = terminalLines(o.Stdin)
		}
		answered, err := askTerminal(ctx, deps, job, lines, o.Stderr)
		if ctx.Err() != nil {
			waitErr = ctx.Err()
			break
		}
		if err != nil {
			// What was answered is recorded; the rest goes to the
			// awaiting file below.
			fmt.Fprintf(o.Stderr, "asking on the terminal: %v\n", err)
			break
		}
		if answered == 0 {
			break
		}
		st, waitErr = jobs.Wait(ctx, store, job, 250*time.Millisecond, prog.Update)
	}
	if waitErr != nil && !errors.Is(waitErr, context.Canceled) {
		return out, waitErr
	}
	out.Interrupted = waitErr != nil
	stop()
	if out.Interrupted {
		// Snapshot after the drain: what finished while stopping counts.
		if s, err := jobs.Load(context.Background(), store, job); err == nil {
			st = s
		}
	}
	out.Status = st
	prog.Finish(st)
	if err := writeFiles(store, job, out.ResultsFile, out.FailedFile, out.TranscriptsFile); err != nil {
		return out, err
	}
	fmt.Fprintf(o.Stderr, "wrote %s (%d done) and %s (%d failed)\n", out.ResultsFile, st.Done, out.FailedFile, st.Failed)
	if out.TranscriptsFile != "" {
		fmt.Fprintf(o.Stderr, "wrote %s (every step of every finished item)\n", out.TranscriptsFile)
	}
	n, err := writeAwaiting(store, job, out.AwaitingFile)
	if err != nil {
		return out, err
	}
	if n > 0 {
		fmt.Fprintf(o.Stderr, "%d requests wait for a person; they are in %s. Answer them in a file of lines like\n"+
			"  {\"item\": \"ID\", \"request\": \"RID\", \"decision\": \"approve\"}   (or reject + message, edit + arguments, answer + answer)\n"+
			"and run the same command again with --responses FILE: nothing parked is lost\n", n, out.AwaitingFile)
	}
	if out.Interrupted {
		fmt.Fprintf(o.Stderr, "interrupted: run the same command again to finish; done items are kept in %s\n", out.ResultsFile)
	}
	return out, nil
}

// ExitCode is the process exit code for an outcome, like `status --wait`
// (6 when items wait for people), or 3 when every item is done but lines
// of the responses file were rejected.
func (o Outcome) ExitCode() int {
	if o.Interrupted {
		return ExitInterrupted
	}
	code := o.Status.ExitCode()
	if code == jobs.ExitAllDone && o.Responses != nil && o.Responses.Rejected > 0 {
		return 3
	}
	return code
}

func printSummary(o Options, s jobs.Summary) {
	if o.JSON {
		b, _ := json.Marshal(s)
		fmt.Fprintln(o.Stdout, string(b))
		return
	}
	jobs.PrintSummary(o.Stderr, s)
}

// readPrior loads an earlier run's results file: id → result line.
func readPrior(path string) (map[string][]byte, error) {
	prior := map[string][]byte{}
	err := jobs.ReadResults(path, func(id string, line []byte, _ time.Time) { prior[id] = line })
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("read earlier results: %w; move the file away to start over", err)
	}
	return prior, nil
}

// writeFiles exports results and failures next to each other, each through
// a temporary file renamed into place, so an interruption while writing
// never leaves a half file that a rerun would trust.
func writeFiles(store *checkpoint.Store, job, results, failed, transcripts string) error {
	ctx := context.Background()
	if err := jobs.WriteAtomic(results, func(w io.Writer) error {
		_, err := jobs.ExportResults(ctx, store, job, w)
		return err
	}); err != nil {
		return err
	}
	if err := jobs.WriteAtomic(failed, func(w io.Writer) error {
		_, err := jobs.ExportFailed(ctx, store, job, w)
		return err
	}); err != nil || transcripts == "" {
		return err
	}
	return jobs.WriteAtomic(transcripts, func(w io.Writer) error {
		_, err := jobs.ExportTranscripts(ctx, store, job, w)
		return err
	})
}
