package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/llmfleet/llmfleet/console"
)

// consoleFlags names the flag of each console.Config field, for usage
// errors.
var consoleFlags = map[string]string{"Addr": "--addr", "Token": "--token", "Refresh": "--refresh"}

func (a *app) consoleCmd() *cobra.Command {
	var cfg console.Config
	c := &cobra.Command{
		Use:   "console [--addr 127.0.0.1:8080] [--token T] [--read-only]",
		Short: "Serve the web console: jobs, their inbox, and asynqmon under /asynqmon/",
		Long: `Serves a web console until interrupted: every job's progress, rate and ETA,
failures per class, cost and breaker state; the requests waiting for a person,
answerable from the page; and asynqmon (queues and tasks) under /asynqmon/.

With --token (or LLMFLEET_CONSOLE_TOKEN), every request needs
"Authorization: Bearer TOKEN" or the cookie of the login form. Without one,
the console listens on loopback only. --read-only refuses every change
(answers, and asynqmon's run, delete and archive).`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if cfg.Token == "" {
				cfg.Token = a.env.Getenv("LLMFLEET_CONSOLE_TOKEN")
			}
			cfg.Logger = a.log
			if err := cfg.Validate(); err != nil {
				return consoleUsage(cfg.Addr, err)
			}
			ctx := c.Context()
			d, closeDeps, err := a.deps(ctx)
			if err != nil {
				return err
			}
			defer closeDeps()
			cfg.Redis = d.Store.Client()
			err = console.Run(ctx, cfg, func(url string) {
				mode := ""
				if cfg.ReadOnly {
					mode = " (read-only)"
				}
				fmt.Fprintf(a.env.Stderr, "console on %s%s; asynqmon on %s/asynqmon/\n", url, mode, url)
			})
			if err != nil {
				return &exitError{code: 1, err: err}
			}
			return nil
		},
	}
	fl := c.Flags()
	fl.StringVar(&cfg.Addr, "addr", console.DefaultAddr, "listen address host:port; beyond loopback it needs --token")
	fl.StringVar(&cfg.Token, "token", "", "token every request must carry (bearer, or the login form's cookie) (default $LLMFLEET_CONSOLE_TOKEN)")
	fl.BoolVar(&cfg.ReadOnly, "read-only", false, "refuse every change: answers to the inbox, asynqmon's run, delete, archive, pause")
	fl.DurationVar(&cfg.Refresh, "refresh", 2*time.Second, "how often the jobs page reloads its numbers")
	return c
}

// consoleUsage turns a console.ConfigError into a usage error naming the
// flag.
func consoleUsage(addr string, err error) error {
	var ce *console.ConfigError
	if !errors.As(err, &ce) {
		return &exitError{code: 1, err: err}
	}
	if errors.Is(err, console.ErrTokenRequired) {
		return usage("--addr %s is not a loopback address: set --token (or LLMFLEET_CONSOLE_TOKEN), which every request must then carry", addr)
	}
	flag := consoleFlags[ce.Field]
	if flag == "" {
		flag = ce.Field
	}
	return usage("%s: %v", flag, ce.Err)
}
