package embedded

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/llmfleet/llmfleet/checkpoint"
	"github.com/llmfleet/llmfleet/jobs"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// A person at the terminal answers what waits once nothing else is left:
// approve, reject with a reason, edit after a refused edit, in the order
// asked; the job then finishes and no awaiting file is left.
func TestAskOnTheTerminal(t *testing.T) {
	dir := t.TempDir()
	examples, err := filepath.Abs("../examples/agents.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(examples)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	// web-1, web-2 and cache-1 want clean_logs, asked in input order.
	answers := strings.Join([]string{
		"a",               // web-1: approve
		"maybe",           // web-2: not an answer, asked again
		"r", "legal hold", // web-2: reject, with a reason
		"e", `{"host": 5}`, // cache-1: edit refused by the tool's parameters, asked again
		"e", `{"host":"c2"}`, // cache-1: edit
	}, "\n") + "\n"
	var stderr bytes.Buffer
	pol := checkpoint.Policy{Model: "gpt-4o-mini", Queue: "default", MaxAttempts: 3, BackoffMin: 1e9, BackoffMax: 2e9, Timeout: 10e9, Retention: 3600e9}
	out, err := Run(t.Context(), Options{
		Submit:          jobs.SubmitOptions{Job: "agents", Input: in, InputName: examples, Policy: pol},
		Dir:             dir,
		SimulatorFaults: "none",
		Stdout:          &bytes.Buffer{}, Stderr: &stderr,
		Ask: true, Stdin: strings.NewReader(answers),
	})
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, stderr.String())
	}
	if code := out.ExitCode(); code != 0 {
		t.Fatalf("exit %d, want 0\n%s", code, stderr.String())
	}
	for _, want := range []string{"item web-1 wants to run clean_logs", "not valid arguments", "item cache-1 wants to run clean_logs"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("the terminal did not show %q:\n%s", want, stderr.String())
		}
	}
	tr, err := os.ReadFile(filepath.Join(dir, "agents.transcripts.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`rejected by a person: legal hold`, `a person changed the arguments to {\"host\":\"c2\"}`, `\"deleted_files\"`} {
		if !strings.Contains(string(tr), want) {
			t.Errorf("transcripts do not show %q", want)
		}
	}
	if _, err := os.Stat(out.AwaitingFile); !os.IsNotExist(err) {
		t.Errorf("awaiting file left behind: %v", err)
	}
	if out.Status.Done != 5 {
		t.Errorf("status %+v, want 5 done", out.Status)
	}
}
