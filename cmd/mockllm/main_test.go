package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"
	"go.uber.org/goleak"
)

// TestMain doubles as the mockllm binary when the exit-code test runs the
// test executable with MOCKLLM_RUN_MAIN=1.
func TestMain(m *testing.M) {
	if os.Getenv("MOCKLLM_RUN_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

// syncBuffer is a bytes.Buffer safe to write from the server and read from
// the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func noEnv(string) string { return "" }

func TestInvalidFlags(t *testing.T) {
	t.Parallel()
	tests := map[string][]string{
		"--latency":       {"--latency", "fast"},
		"-rpm":            {"--rpm", "many"},
		"--tpm":           {"--tpm", "-1"},
		"--retry-after":   {"--retry-after", "0"},
		"--context-limit": {"--context-limit", "-5"},
		`"418=0.5"`:       {"--faults", "429=0.1,418=0.5"},
		"-bogus":          {"--bogus"},
		`"extra"`:         {"extra"},
	}
	for named, args := range tests {
		var stderr syncBuffer
		err := run(t.Context(), args, &stderr, noEnv)
		var usage *usageError
		if !errors.As(err, &usage) || !strings.Contains(err.Error(), named) {
			t.Errorf("run %v = %v, want a usage error naming %s", args, err, named)
		}
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	var stderr syncBuffer
	if err := run(t.Context(), []string{"-h"}, &stderr, noEnv); err != nil {
		t.Fatalf("run -h: %v", err)
	}
	for _, want := range []string{"--faults", "#fail-first:N:CODE", "html502", "quota", "reset", "schemamiss", "/v1/embeddings"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("help lacks %q", want)
		}
	}
}

func TestServeAndShutdown(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stderr syncBuffer
	env := func(k string) string {
		if k == "MOCKLLM_API_KEY" {
			return "sk-from-env"
		}
		return ""
	}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--addr", "127.0.0.1:0", "--faults", "500=0", "--latency", "1ms"}, &stderr, env)
	}()

	urlRE := regexp.MustCompile(`msg=listening .*url=(http://\S+)`)
	var url string
	deadline := time.Now().Add(5 * time.Second)
	for url == "" {
		if m := urlRE.FindStringSubmatch(stderr.String()); m != nil {
			url = m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("no listening line in %q", stderr.String())
		} else {
			select {
			case err := <-done:
				t.Fatalf("run returned early: %v", err)
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
	if strings.Contains(stderr.String(), "sk-from-env") {
		t.Errorf("the API key was logged: %q", stderr.String())
	}

	call := func(key string) error {
		cfg := openai.DefaultConfig(key)
		cfg.BaseURL = url
		_, err := openai.NewClientWithConfig(cfg).CreateChatCompletion(t.Context(), openai.ChatCompletionRequest{
			Model:    "gpt-4o-mini",
			Messages: []openai.ChatCompletionMessage{{Role: "user", Content: "hi"}},
		})
		return err
	}
	var apiErr *openai.APIError
	if err := call("sk-wrong"); !errors.As(err, &apiErr) || apiErr.HTTPStatusCode != 401 {
		t.Errorf("wrong key: %v, want 401", err)
	}
	if err := call("sk-from-env"); err != nil {
		t.Errorf("key from MOCKLLM_API_KEY: %v", err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancel")
	}
	if !strings.Contains(stderr.String(), "msg=stopped") {
		t.Errorf("no stopped line in %q", stderr.String())
	}
}

func TestExitCodes(t *testing.T) {
	t.Parallel()
	for args, want := range map[string]int{
		"--rpm=-1":                  2,
		"--faults=500=2":            2,
		"--addr=256.0.0.1:1":        1,
		"--latency=10ms-5ms --seed": 2,
	} {
		cmd := exec.CommandContext(t.Context(), os.Args[0], strings.Fields(args)...)
		cmd.Env = append(os.Environ(), "MOCKLLM_RUN_MAIN=1")
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != want {
			t.Errorf("mockllm %s: %v (%s), want exit %d", args, err, out, want)
		}
		if !strings.HasPrefix(string(out), "mockllm: ") {
			t.Errorf("mockllm %s: output %q", args, out)
		}
	}
}
