// Command worker runs one llmfleet worker: an asynq server processing item
// tasks against an OpenAI-compatible API. Run as many as you like, on as
// many machines as you like, against the same Redis.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/llmfleet/llmfleet/alerts"
	"github.com/llmfleet/llmfleet/redisconn"
	"github.com/llmfleet/llmfleet/worker"
)

// version is stamped at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		var ue usageError
		if errors.As(err, &ue) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

type usageError struct{ error }

// config is the parsed command line and environment.
type config struct {
	redisURL string
	worker   worker.Config
	logLevel slog.Level
}

func parse(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	queues := fs.String("queues", "default=1", "queues and priorities, e.g. default=1,high=5")
	fs.StringVar(&c.redisURL, "redis", getenv("REDIS_URL"), "Redis URL: redis://, rediss:// (TLS), redis-sentinel://, redis-cluster:// (default $REDIS_URL, else "+redisconn.DefaultURL+")")
	fs.IntVar(&c.worker.Concurrency, "concurrency", 10, "items processed at once")
	fs.DurationVar(&c.worker.ShutdownTimeout, "shutdown-timeout", 25*time.Second, "on SIGTERM, how long in-flight calls may finish before their tasks are requeued")
	fs.StringVar(&c.worker.MetricsAddr, "metrics-addr", "", "serve /metrics, /healthz and /readyz on this address (e.g. :9090)")
	fs.DurationVar(&c.worker.CheckInterval, "check-interval", time.Second, "how often delayed (retry) tasks become runnable (at least 1s)")
	fs.StringVar(&c.worker.Provider.BaseURL, "base-url", getenv("OPENAI_BASE_URL"), "OpenAI-compatible API base URL (default $OPENAI_BASE_URL, else OpenAI)")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	rpm, err := envInt(getenv, "LLMFLEET_RPM")
	if err != nil {
		return c, usageError{err}
	}
	tpm, err := envInt(getenv, "LLMFLEET_TPM")
	if err != nil {
		return c, usageError{err}
	}
	fs.IntVar(&c.worker.RPM, "rpm", rpm, "provider's requests per minute, for the whole fleet (default $LLMFLEET_RPM; 0 = unlimited)")
	fs.IntVar(&c.worker.TPM, "tpm", tpm, "provider's tokens per minute, for the whole fleet (default $LLMFLEET_TPM; 0 = unlimited)")
	b := &c.worker.Breaker
	fs.DurationVar(&b.Cooldown, "breaker-cooldown", 5*time.Minute, "the longest the fleet-wide breaker stays open before probe calls (each failed probe doubles the wait up to this)")
	fs.DurationVar(&b.FirstCooldown, "breaker-first-cooldown", 15*time.Second, "how long the breaker stays open the first time (at most --breaker-cooldown)")
	fs.DurationVar(&b.Window, "breaker-window", time.Minute, "sliding window of the breaker's trip rules")
	fs.IntVar(&b.ConsecutiveItems, "breaker-consecutive", 10, "open after this many different items fail in a row")
	fs.IntVar(&b.MinItems, "breaker-min-items", 10, "distinct items the window needs before --breaker-failure-ratio applies")
	fs.Float64Var(&b.FailureRatio, "breaker-failure-ratio", 0.5, "open when this share of the window's items failed")
	fs.IntVar(&b.RateLimitedItems, "breaker-429-items", 20, "open when this many items got 429s in the window...")
	fs.Float64Var(&b.RateLimitedRatio, "breaker-429-ratio", 0.5, "...and they are at least this share of the window's items")
	fs.IntVar(&b.MaxProbes, "breaker-probes", 1, "probe calls at once, fleet-wide, while half-open")
	fs.BoolVar(&c.worker.NoBreaker, "no-breaker", false, "turn the fleet-wide circuit breaker off")
	al := &c.worker.Alerts
	hooks := &webhookList{env: splitList(getenv("LLMFLEET_ALERT_WEBHOOK"))}
	fs.Var(hooks, "alert-webhook", "post alert events to this URL (repeatable; default $LLMFLEET_ALERT_WEBHOOK, comma-separated); none turns alerts off")
	format := fs.String("alert-format", "json", "alert body format: json or slack")
	fs.StringVar(&al.Secret, "alert-secret", "", "sign alert bodies with HMAC-SHA256 in X-Llmfleet-Signature (default $LLMFLEET_ALERT_SECRET, which keeps it out of ps)")
	fs.Float64Var(&al.ErrorRate, "alert-error-rate", 0.05, "raise error_rate when more than this share of a job's items in the window failed")
	fs.IntVar(&al.MinItems, "alert-min-items", 20, "items of the job the window needs before --alert-error-rate applies")
	fs.DurationVar(&al.Window, "alert-window", 5*time.Minute, "sliding window of the error-rate rule")
	fs.DurationVar(&al.Cooldown, "alert-cooldown", 15*time.Minute, "least time between two error_rate events of a job")
	fs.DurationVar(&c.worker.BatchLinger, "batch-linger", 2*time.Millisecond, "how long an item's claim or result may wait to share a Redis round trip with others of its job when they come fast; 0 never waits")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, err
		}
		return c, usageError{err}
	}
	switch {
	case c.worker.BatchLinger < 0:
		return c, usageError{fmt.Errorf("--batch-linger must not be negative, got %s", c.worker.BatchLinger)}
	case c.worker.BatchLinger == 0:
		c.worker.BatchLinger = -1 // worker.Config: negative is off, zero the default
	}
	al.Webhooks = hooks.list()
	if al.Secret == "" {
		// Not the flag's default: --help would print it.
		al.Secret = getenv("LLMFLEET_ALERT_SECRET")
	}
	al.Format = alerts.Format(*format)
	switch {
	case al.ErrorRate <= 0 || al.ErrorRate >= 1:
		return c, usageError{fmt.Errorf("--alert-error-rate must be above 0 and below 1, got %g", al.ErrorRate)}
	case al.MinItems < 1:
		return c, usageError{fmt.Errorf("--alert-min-items must be at least 1, got %d", al.MinItems)}
	case al.Cooldown <= 0:
		return c, usageError{fmt.Errorf("--alert-cooldown must be positive, got %s", al.Cooldown)}
	case al.Window <= 0:
		return c, usageError{fmt.Errorf("--alert-window must be at least 1s, got %s", al.Window)}
	}
	if fs.NArg() > 0 {
		return c, usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	q, err := worker.ParseQueues(*queues)
	if err != nil {
		return c, usageError{err}
	}
	c.worker.Queues = q
	if c.worker.Concurrency < 1 {
		return c, usageError{fmt.Errorf("--concurrency must be at least 1, got %d", c.worker.Concurrency)}
	}
	if err := c.logLevel.UnmarshalText([]byte(*level)); err != nil {
		return c, usageError{fmt.Errorf("--log-level: %q is not debug, info, warn or error", *level)}
	}
	// The key comes from the environment only: a flag would show in ps.
	c.worker.Provider.APIKey = getenv("OPENAI_API_KEY")
	if err := c.worker.Validate(); err != nil {
		return c, usageError{err}
	}
	if err := c.worker.Alerts.Validate(); err != nil {
		return c, usageError{err}
	}
	return c, nil
}

func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	c, err := parse(args, getenv, stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: c.logLevel}))
	c.worker.Logger = log
	rdb, err := redisconn.Open(c.redisURL)
	if err != nil {
		return usageError{err}
	}
	defer rdb.Close()
	if err := redisconn.Ping(ctx, rdb, c.redisURL); err != nil {
		return err
	}
	base := c.worker.Provider.BaseURL
	if base == "" {
		base = "https://api.openai.com/v1"
	}
	log.Info("provider", "version", version, "base_url", redactURL(base), "api_key_set", c.worker.Provider.APIKey != "", "redis", redisconn.Redact(orDefault(c.redisURL)))
	return worker.Run(ctx, rdb, c.worker)
}

// webhookList is --alert-webhook: repeatable, and given on the command
// line it replaces $LLMFLEET_ALERT_WEBHOOK. Its String never shows a URL
// (flag's usage output prints defaults).
type webhookList struct {
	env, flags []string
	set        bool
}

func (w *webhookList) String() string {
	if w == nil {
		return ""
	}
	return fmt.Sprintf("%d webhook(s)", len(w.list()))
}

func (w *webhookList) Set(v string) error {
	w.set = true
	w.flags = append(w.flags, splitList(v)...)
	return nil
}

func (w *webhookList) list() []string {
	if w.set {
		return w.flags
	}
	return w.env
}

func splitList(s string) []string {
	var out []string
	for part := range strings.SplitSeq(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

// envInt reads a whole number from the environment; unset is 0.
func envInt(getenv func(string) string, name string) (int, error) {
	v := getenv(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s=%q is not a whole number of at least 0", name, v)
	}
	return n, nil
}

func orDefault(u string) string {
	if u == "" {
		return redisconn.DefaultURL
	}
	return u
}

// redactURL drops what a base URL may carry that is secret: user info and
// the query (some gateways take the key as ?api-key=).
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	u.User = nil
	if u.RawQuery != "" {
		u.RawQuery = "redacted"
	}
	return u.String()
}
