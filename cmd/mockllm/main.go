// Command mockllm serves the llmfleet simulator: an OpenAI-compatible chat
// completion and embedding API with fault injection, for the demo, tests, benchmarks and
// the compose setup. See package simulator for the behaviour and
// `mockllm -h` for the flags and directives.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/llmfleet/llmfleet/simulator"
)

// version is stamped at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stderr, os.Getenv)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "mockllm:", err)
		var usage *usageError
		if errors.As(err, &usage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// usageError is a bad command line: exit status 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// flagOf maps simulator.Config fields to the flags that set them.
var flagOf = map[string]string{
	"Latency":      "--latency",
	"RPM":          "--rpm",
	"TPM":          "--tpm",
	"RetryAfter":   "--retry-after",
	"ContextLimit": "--context-limit",
	"Faults":       "--faults",
	"Seed":         "--seed",
	"APIKey":       "--api-key",
}

// shutdownGrace bounds the wait for in-flight calls on SIGINT/SIGTERM.
const shutdownGrace = 10 * time.Second

// run serves until ctx is done. getenv reads the environment
// (MOCKLLM_API_KEY).
func run(ctx context.Context, args []string, stderr io.Writer, getenv func(string) string) error {
	cfg, addr, err := parseFlags(args, stderr, getenv)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))

	sim, err := simulator.Start(ctx, cfg, addr)
	var cfgErr *simulator.ConfigError
	if errors.As(err, &cfgErr) {
		return &usageError{fmt.Errorf("invalid value for %s: %w", flagOf[cfgErr.Field], cfgErr.Err)}
	}
	if err != nil {
		return err
	}
	log.Info("listening", "version", version, "addr", sim.Addr(), "url", sim.URL(), "latency", cfg.Latency,
		"rpm", cfg.RPM, "tpm", cfg.TPM, "context_limit", cfg.ContextLimit, "faults", cfg.Faults,
		"api_key", cfg.APIKey != "")

	select {
	case <-ctx.Done():
	case <-sim.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	if err := sim.Shutdown(sctx); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	log.Info("stopped")
	return nil
}

func parseFlags(args []string, stderr io.Writer, getenv func(string) string) (simulator.Config, string, error) {
	var cfg simulator.Config
	fs := flag.NewFlagSet("mockllm", flag.ContinueOnError)
	// The error is reported once, by main; the usage only on -h.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	addr := fs.String("addr", "127.0.0.1:8089", "listen `address`")
	fs.StringVar(&cfg.Latency, "latency", "", "latency of every call: a `duration` (20ms) or a range (10ms-200ms)")
	fs.IntVar(&cfg.RPM, "rpm", 0, "requests per sliding minute, 0 for unlimited")
	fs.IntVar(&cfg.TPM, "tpm", 0, "tokens (prompt + reply) per sliding minute, 0 for unlimited")
	fs.IntVar(&cfg.RetryAfter, "retry-after", 1, "Retry-After `seconds` of random 429s; minimum of rate-limit 429s")
	fs.IntVar(&cfg.ContextLimit, "context-limit", 0, "prompt `tokens` above which calls get 400 context_length_exceeded, 0 for none")
	fs.StringVar(&cfg.Faults, "faults", "", "random fault `mix`: CODE=probability,... e.g. 429=0.05,500=0.02,timeout=0.01")
	fs.Int64Var(&cfg.Seed, "seed", 0, "seed of random latency and faults, 0 for time-based")
	fs.StringVar(&cfg.APIKey, "api-key", getenv("MOCKLLM_API_KEY"), "require \"Authorization: Bearer `KEY`\" (default $MOCKLLM_API_KEY)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(stderr, fs)
			return cfg, "", err
		}
		return cfg, "", &usageError{fmt.Errorf("%w (see mockllm -h)", err)}
	}
	if fs.NArg() > 0 {
		return cfg, "", &usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	if cfg.RetryAfter == 0 {
		return cfg, "", &usageError{errors.New("invalid value for --retry-after: must be at least 1")}
	}
	return cfg, *addr, nil
}

func usage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, `Usage: mockllm [flags]

An OpenAI-compatible chat completion and embedding server with fault injection.
  POST /v1/chat/completions  reply "mock:" + first 12 hex of SHA-256(last user message);
                             json_schema requests get JSON made to match the schema
  POST /v1/embeddings        component k = byte k of SHA-256(input) / 255;
                             dimensions 1-32, default 8
  GET  /v1/models
  GET  /admin/stats[?times=1]   PUT /admin/faults (body: a --faults mix, empty clears)
  POST /admin/reset             GET /healthz

Directives in the last user message (or in any embedding input, for the
whole request):
  #fail:CODE            every call fails with CODE
  #fail-first:N:CODE    the first N calls for this content fail, then success
  #retry-after:S        Retry-After of a 429 (directive or random)

CODEs (also valid in --faults):
  400 401 403 404 429 500 502 503 504 529   OpenAI-style JSON errors
  quota     429 insufficient_quota, no Retry-After
  html502   502 with an HTML Bad Gateway page
  overflow  400 context_length_exceeded
  filter    400 content_filter
  badjson   200 whose content is not JSON even when JSON was asked
  empty     200 with empty content
  html200   200 with an HTML page
  timeout   never answers; held until the client gives up
  reset     closes the connection without a response
  length    200 with half the reply, finish_reason length
  nousage   200 without a usage object
  schemamiss 200 whose content is {"unexpected":true}: JSON missing the schema

Flags:
`)
	var b strings.Builder
	fs.SetOutput(&b)
	fs.PrintDefaults()
	// Document the GNU spelling the README uses; Go accepts both.
	fmt.Fprint(w, strings.ReplaceAll(b.String(), "  -", "  --"))
}
