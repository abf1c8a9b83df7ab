// Command producer is llmfleet's CLI: it turns a file of items into a job of
// asynq tasks, and reads, waits for, exports, cancels and deletes jobs.
// See `producer --help` and the README.
//
// The CLI is built with cobra (the de facto standard for Go CLIs with
// subcommands: help, usage errors and flag parsing come for free).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/redis/go-redis/v9"
	"golang.org/x/term"
)

// version is stamped at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

func main() {
	// go-redis logs dial failures itself; the CLI reports them once, as an
	// error that names the server.
	redis.SetLogger(quietLogger{})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Main(ctx, Env{
		Args: os.Args[1:], Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr,
		Getenv: os.Getenv, TTY: term.IsTerminal(int(os.Stderr.Fd())),
		Interactive: term.IsTerminal(int(os.Stdin.Fd())) && term.IsTerminal(int(os.Stderr.Fd())),
	})
	stop()
	os.Exit(code)
}

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

// Env is everything the CLI takes from its process, so tests can run it
// in-process.
type Env struct {
	Args           []string
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	// TTY selects live progress bars.
	TTY bool
	// Interactive says a person is at the terminal (standard input and
	// error are terminals): an embedded run asks them what waits for a
	// person.
	Interactive bool
}

// exitError carries an exit code; its message, when not empty, is printed.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return ""
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// Main runs the CLI and returns the process exit code.
func Main(ctx context.Context, env Env) int {
	if env.Getenv == nil {
		env.Getenv = func(string) string { return "" }
	}
	log := slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	root := newRoot(&app{env: env, log: log})
	root.Version = version
	root.SetArgs(env.Args)
	root.SetIn(env.Stdin)
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(env.Stderr, "producer:", ee.err)
		}
		return ee.code
	}
	fmt.Fprintln(env.Stderr, "producer:", err)
	if strings.HasPrefix(err.Error(), "unknown command") {
		return 2
	}
	return codeOf(err)
}
