package console

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"
	"github.com/redis/go-redis/v9"

	"github.com/llmfleet/llmfleet/checkpoint"
	"github.com/llmfleet/llmfleet/jobs"
)

// DefaultAddr is where the console listens when Config.Addr is empty.
const DefaultAddr = "127.0.0.1:8080"

// Config configures the console. Zero values mean the documented defaults.
type Config struct {
	// Addr is the listen address, host:port. Default DefaultAddr. Without a
	// Token it must be a loopback address.
	Addr string
	// Token, when set, is required on every request: as a bearer token or
	// through the login form's session cookie.
	Token string
	// ReadOnly refuses every request that would change something: answers
	// to the inbox, and asynqmon's run, delete, archive, pause.
	ReadOnly bool
	// Redis is the fleet's connection (required). The console never closes
	// it: close it after Shutdown.
	Redis redis.UniversalClient
	// Refresh is how often the jobs page reloads its numbers. Default 2s.
	Refresh time.Duration
	// Logger receives the console's logs. Default: discard.
	Logger *slog.Logger
}

// ErrTokenRequired means the console was asked to listen beyond loopback
// without a token.
var ErrTokenRequired = errors.New("listening beyond loopback needs a token")

// ConfigError names the Config field that is wrong.
type ConfigError struct {
	Field string
	Err   error
}

func (e *ConfigError) Error() string { return fmt.Sprintf("console: %s: %v", e.Field, e.Err) }
func (e *ConfigError) Unwrap() error { return e.Err }

// Validate checks the configuration, applying defaults, without touching
// the network: Redis is not required here, so that a command can check its
// flags before it connects.
func (c *Config) Validate() error {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	host, _, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return &ConfigError{Field: "Addr", Err: err}
	}
	if c.Token == "" && !loopbackHost(host) {
		return &ConfigError{Field: "Token", Err: fmt.Errorf("address %q is not loopback: %w", c.Addr, ErrTokenRequired)}
	}
	if strings.ContainsAny(c.Token, " \t\r\n") {
		return &ConfigError{Field: "Token", Err: errors.New("must not contain spaces or newlines (it is sent as a bearer token)")}
	}
	switch {
	case c.Refresh == 0:
		c.Refresh = 2 * time.Second
	case c.Refresh < 100*time.Millisecond:
		return &ConfigError{Field: "Refresh", Err: fmt.Errorf("%s is below 100ms", c.Refresh)}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// loopbackHost reports whether host names this machine only: localhost,
// 127.0.0.0/8 or ::1. An empty host (":8080") is every interface.
func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// sharedConn is an asynq.RedisConnOpt that hands out the fleet's
// connection (see the package doc for why asynqmon is never closed).
type sharedConn struct{ rdb redis.UniversalClient }

func (s sharedConn) MakeRedisClient() any { return s.rdb }

// Server is a running console.
type Server struct {
	cfg  Config
	ln   net.Listener
	http *http.Server
	done chan struct{}
	err  error // of Serve, read after done
}

// Start validates cfg, listens on cfg.Addr and serves in the background
// until Shutdown.
func Start(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	h, err := newHandler(cfg)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("console: listen on %s: %w", cfg.Addr, err)
	}
	s := &Server{
		cfg: cfg, ln: ln, done: make(chan struct{}),
		http: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
		},
	}
	go func() {
		defer close(s.done)
		if err := s.http.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			s.err = err
		}
	}()
	return s, nil
}

// URL is the console's address, http://host:port (the port chosen when
// Addr asked for port 0).
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() }

// Done is closed when the server stops serving.
func (s *Server) Done() <-chan struct{} { return s.done }

// Shutdown stops accepting connections, lets requests in flight finish
// until ctx ends, and waits for the server to stop.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.http.Shutdown(ctx)
	if err != nil {
		s.http.Close()
	}
	<-s.done
	if s.err != nil {
		return s.err
	}
	return err
}

// shutdownTimeout bounds how long Run lets requests in flight finish.
const shutdownTimeout = 5 * time.Second

// Run serves until ctx ends, then shuts down; ready, when set, is called
// with the URL once the console listens.
func Run(ctx context.Context, cfg Config, ready func(url string)) error {
	s, err := Start(cfg)
	if err != nil {
		return err
	}
	if ready != nil {
		ready(s.URL())
	}
	select {
	case <-ctx.Done():
	case <-s.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	return s.Shutdown(sctx)
}

// console holds what the handlers share.
type console struct {
	cfg     Config
	deps    jobs.Deps
	auth    *auth
	rates   *rates
	classes *classCache
	pages   *pages
}

func newHandler(cfg Config) (http.Handler, error) {
	if cfg.Redis == nil {
		return nil, &ConfigError{Field: "Redis", Err: errors.New("is required")}
	}
	a, err := newAuth(cfg.Token)
	if err != nil {
		return nil, err
	}
	p, err := newPages()
	if err != nil {
		return nil, err
	}
	c := &console{
		cfg: cfg,
		deps: jobs.Deps{
			Store:     checkpoint.New(cfg.Redis),
			Client:    asynq.NewClientFromRedisClient(cfg.Redis),
			Inspector: asynq.NewInspectorFromRedisClient(cfg.Redis),
		},
		auth:    a,
		rates:   newRates(time.Now),
		classes: newClassCache(time.Now),
		pages:   p,
	}
	mon := asynqmon.New(asynqmon.Options{
		RootPath:     asynqmonRoot,
		RedisConnOpt: sharedConn{cfg.Redis},
		ReadOnly:     cfg.ReadOnly,
	})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", c.jobsPage)
	mux.HandleFunc("GET /partials/jobs", c.jobsPartial)
	mux.HandleFunc("GET /partials/inbox", c.inboxPartial)
	mux.Handle("GET /static/", http.FileServerFS(staticFS))
	mux.HandleFunc("GET /api/jobs", c.apiJobs)
	mux.HandleFunc("GET /api/jobs/{job}", c.apiJob)
	mux.HandleFunc("GET /api/jobs/{job}/inbox", c.apiInbox)
	mux.HandleFunc("POST /api/jobs/{job}/respond", c.respond)
	mux.HandleFunc("GET /login", c.loginPage)
	mux.HandleFunc("POST /login", c.login)
	mux.HandleFunc("POST /logout", c.logout)
	mux.Handle(asynqmonRoot+"/", mon)
	mux.Handle("GET "+asynqmonRoot, http.RedirectHandler(asynqmonRoot+"/", http.StatusMovedPermanently))
	return c.guard(mux), nil
}

// asynqmonRoot is where asynqmon is mounted.
const asynqmonRoot = "/asynqmon"
