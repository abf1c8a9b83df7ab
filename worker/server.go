package worker

import (
	"context"
	"errors"
	"fmt"
	"github.com/llmfleet/llmfleet/agent"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/llmfleet/llmfleet/alerts"
	"github.com/llmfleet/llmfleet/breaker"
	"github.com/llmfleet/llmfleet/checkpoint"
	"github.com/llmfleet/llmfleet/provider"
	"github.com/llmfleet/llmfleet/ratelimit"
	"github.com/llmfleet/llmfleet/tasks"
)

// Config configures a worker. Zero values mean the documented defaults.
type Config struct {
	// Concurrency is how many items are processed at once. Default 10.
	Concurrency int
	// Queues maps queue names to priorities. Default {"default": 1}.
	Queues map[string]int
	// ShutdownTimeout is how long in-flight calls may finish on shutdown
	// before their tasks are requeued. Default 25s.
	ShutdownTimeout time.Duration
	// CheckInterval is how often delayed (retry) tasks become runnable.
	// Default 1s.
	CheckInterval time.Duration
	// MetricsAddr, when set, serves /metrics, /healthz and /readyz.
	MetricsAddr string
	// Provider configures the provider client.
	Provider provider.Config
	// Logger receives the worker's logs. Default: discard.
	Logger *slog.Logger
	// Completer overrides the provider client (tests of the handler only).
	Completer Completer
	// RPM and TPM are the provider's limits, the same for the whole fleet
	// (0 = unlimited).
	RPM, TPM int
	// Breaker configures the fleet-wide circuit breaker.
	Breaker breaker.Settings
	// NoBreaker turns the breaker off (to measure what it saves).
	NoBreaker bool
	// BatchLinger is how long, at most, an item's claim or result waits to
	// share a Redis script run with others of its job when they come fast
	// (group commit; see checkpoint.DefaultLinger). Default 2ms; negative
	// turns the wait off (concurrent ones still share runs).
	BatchLinger time.Duration
	// Tools are Go functions agent items may call, by tool name: a tool
	// of the job's tools file without a url runs the function of its name.
	Tools map[string]agent.Func
	// ToolEnv expands ${VAR} in HTTP tools' urls and headers; nil means
	// the process environment.
	ToolEnv func(string) (string, bool)
	// Alerts configures the alert webhooks; none means alerts are off.
	Alerts alerts.Config
}

func (c *Config) setDefaults() {
	if c.Concurrency == 0 {
		c.Concurrency = 10
	}
	if len(c.Queues) == 0 {
		c.Queues = map[string]int{"default": 1}
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 25 * time.Second
	}
	if c.CheckInterval == 0 {
		c.CheckInterval = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case c.BatchLinger == 0:
		c.BatchLinger = checkpoint.DefaultLinger
	case c.BatchLinger < 0:
		c.BatchLinger = 0
	}
}

// Validate reports the first invalid field, named as its flag.
func (c *Config) Validate() error {
	switch {
	case c.Concurrency < 0:
		return fmt.Errorf("--concurrency must be at least 1, got %d", c.Concurrency)
	case c.ShutdownTimeout < 0:
		return fmt.Errorf("--shutdown-timeout must not be negative, got %s", c.ShutdownTimeout)
	case c.CheckInterval < 0 || (c.CheckInterval > 0 && c.CheckInterval < time.Second):
		return fmt.Errorf("--check-interval must be at least 1s (asynq counts whole seconds), got %s", c.CheckInterval)
	case c.RPM < 0:
		return fmt.Errorf("--rpm must not be negative, got %d", c.RPM)
	case c.TPM < 0:
		return fmt.Errorf("--tpm must not be negative, got %d", c.TPM)
	case c.BatchLinger > time.Second:
		return fmt.Errorf("--batch-linger must be at most 1s, got %s", c.BatchLinger)
	}
	if err := c.Breaker.Validate(); err != nil {
		return err
	}
	for q, p := range c.Queues {
		if q == "" || p < 1 {
			return fmt.Errorf("--queues: queue %q needs a priority of at least 1, got %d", q, p)
		}
	}
	return nil
}

// ParseQueues parses "default=1,high=5" (a bare name means priority 1).
func ParseQueues(s string) (map[string]int, error) {
	out := map[string]int{}
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, prio, found := strings.Cut(part, "=")
		p := 1
		if found {
			n, err := strconv.Atoi(strings.TrimSpace(prio))
			if err != nil || n < 1 {
				return nil, fmt.Errorf("--queues: %q: priority must be a whole number of at least 1", part)
			}
			p = n
		}
		name = strings.TrimSpace(name)
		if name == "" {
			return nil, fmt.Errorf("--queues: %q: queue name is empty", part)
		}
		out[name] = p
	}
	if len(out) == 0 {
		return nil, errors.New("--queues: no queue given")
	}
	return out, nil
}

// Worker is a running worker process: the asynq server and the metrics
// listener.
type Worker struct {
	cfg     Config
	rdb     redis.UniversalClient
	srv     *asynq.Server
	handler *Handler
	reg     *prometheus.Registry
	http    *http.Server
	ln      net.Listener
	served  chan struct{}
	// flushing runs the guard's flush loop until stopFlush is closed.
	flushing  sync.WaitGroup
	stopFlush chan struct{}
	alerts    *alerts.Alerter
}

// New returns a worker on rdb. The caller owns rdb.
func New(rdb redis.UniversalClient, cfg Config) (*Worker, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Provider.Concurrency == 0 {
		cfg.Provider.Concurrency = cfg.Concurrency
	}
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	completer := cfg.Completer
	if completer == nil {
		completer = provider.NewClient(cfg.Provider)
	}
	base := cfg.Provider.BaseURL
	if base == "" {
		base = provider.DefaultBaseURL
	}
	g := &guard{
		rdb: rdb, baseURL: base, settings: cfg.Breaker, noBreak: cfg.NoBreaker,
		log: cfg.Logger, metrics: m, breakers: map[string]*breaker.Breaker{},
	}
	// Even without RPM/TPM limits the limiter keeps the fleet-wide hold that
	// a 429's Retry-After sets.
	g.limiter = ratelimit.New(rdb, ratelimit.ProviderKey(base, cfg.Provider.APIKey), ratelimit.Limits{RPM: cfg.RPM, TPM: cfg.TPM})
	h := NewHandler(checkpoint.New(rdb).WithLinger(cfg.BatchLinger), completer, cfg.Logger, m, g)
	h.inspector = asynq.NewInspectorFromRedisClient(rdb)
	reg.MustRegister(newStateCollector(h.inspector, h.store))
	h.tools = &agent.Runner{Funcs: cfg.Tools, LookupEnv: cfg.ToolEnv, Log: cfg.Logger}
	if cfg.Alerts.Logger == nil {
		cfg.Alerts.Logger = cfg.Logger
	}
	al, err := alerts.New(rdb, h.store, cfg.Alerts)
	if err != nil {
		return nil, err
	}
	if al != nil {
		h.alerts = &alertHooks{a: al}
	}
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency:              cfg.Concurrency,
		Queues:                   cfg.Queues,
		ShutdownTimeout:          cfg.ShutdownTimeout,
		DelayedTaskCheckInterval: cfg.CheckInterval,
		TaskCheckInterval:        cfg.CheckInterval,
		RetryDelayFunc:           RetryDelay,
		IsFailure:                IsFailure,
		Logger:                   asynqLogger{cfg.Logger},
		LogLevel:                 asynq.WarnLevel,
	})
	return &Worker{cfg: cfg, rdb: rdb, srv: srv, handler: h, reg: reg, alerts: al}, nil
}

// Start starts processing and, when configured, the metrics listener.
func (w *Worker) Start() error {
	if w.cfg.MetricsAddr != "" {
		ln, err := net.Listen("tcp", w.cfg.MetricsAddr)
		if err != nil {
			return fmt.Errorf("--metrics-addr %s: %w", w.cfg.MetricsAddr, err)
		}
		w.ln = ln
		w.http = &http.Server{Handler: w.routes(), ReadHeaderTimeout: 5 * time.Second}
		w.served = make(chan struct{})
		go func() {
			defer close(w.served)
			if err := w.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				w.cfg.Logger.Error("metrics listener stopped", "err", err)
			}
		}()
	}
	mux := asynq.NewServeMux()
	mux.Handle(tasks.TypeItem, w.handler)
	if err := w.srv.Start(mux); err != nil {
		w.stopHTTP()
		return fmt.Errorf("start asynq server: %w", err)
	}
	w.stopFlush = make(chan struct{})
	w.flushing.Go(func() { w.handler.guard.flushLoop(w.stopFlush) })
	w.alerts.Start()
	w.cfg.Logger.Info("worker started", "concurrency", w.cfg.Concurrency, "queues", queueList(w.cfg.Queues))
	return nil
}

// MetricsAddr returns the address the metrics listener is bound to.
func (w *Worker) MetricsAddr() string {
	if w.ln == nil {
		return ""
	}
	return w.ln.Addr().String()
}

// Shutdown stops fetching tasks, lets in-flight calls finish within the
// shutdown timeout (then requeues them), and stops the metrics listener.
func (w *Worker) Shutdown() {
	w.srv.Stop()
	w.srv.Shutdown()
	if w.stopFlush != nil {
		close(w.stopFlush)
		w.flushing.Wait()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	w.handler.guard.flush(ctx, true)
	cancel()
	// After the drain: the items it finished are counted and raised.
	w.alerts.Shutdown()
	w.stopHTTP()
	w.cfg.Logger.Info("worker stopped")
}

func (w *Worker) stopHTTP() {
	if w.http == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = w.http.Shutdown(ctx)
	<-w.served
}

// Run starts the worker and blocks until ctx is done, then shuts down.
func Run(ctx context.Context, rdb redis.UniversalClient, cfg Config) error {
	w, err := New(rdb, cfg)
	if err != nil {
		return err
	}
	if err := w.Start(); err != nil {
		return err
	}
	<-ctx.Done()
	w.Shutdown()
	return nil
}

func (w *Worker) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(w.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, _ *http.Request) {
		rw.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(rw http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := w.rdb.Ping(ctx).Err(); err != nil {
			http.Error(rw, "redis unreachable", http.StatusServiceUnavailable)
			return
		}
		rw.Write([]byte("ok\n"))
	})
	return mux
}

func queueList(q map[string]int) string {
	var parts []string
	for name, p := range q {
		parts = append(parts, fmt.Sprintf("%s=%d", name, p))
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// asynqLogger sends asynq's logs to slog.
type asynqLogger struct{ l *slog.Logger }

func (a asynqLogger) Debug(args ...any) { a.l.Debug(fmt.Sprint(args...), "component", "asynq") }
func (a asynqLogger) Info(args ...any)  { a.l.Info(fmt.Sprint(args...), "component", "asynq") }
func (a asynqLogger) Warn(args ...any) {
	msg := fmt.Sprint(args...)
	if strings.HasPrefix(msg, "Retry exhausted") {
		// Every final failure is archived through SkipRetry on purpose and
		// logged by the handler with its class and reason.
		a.l.Debug(msg, "component", "asynq")
		return
	}
	a.l.Warn(msg, "component", "asynq")
}
func (a asynqLogger) Error(args ...any) { a.l.Error(fmt.Sprint(args...), "component", "asynq") }
func (a asynqLogger) Fatal(args ...any) { a.l.Error(fmt.Sprint(args...), "component", "asynq") }
