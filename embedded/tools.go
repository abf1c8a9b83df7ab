package embedded

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"sync"

	"github.com/llmfleet/llmfleet/agent"
)

// DemoTools are the tools an embedded agent job gets when its items name
// tools and no --tools file is given: check_disk and clean_logs, Go tools
// served by the embedded worker (DemoFuncs). clean_logs deletes files, so
// each of its calls waits for a person's approval.
func DemoTools() []agent.Tool {
	return []agent.Tool{
		{Name: "check_disk", Description: "Check a host's disk usage: used percent and the size of its logs",
			Parameters: json.RawMessage(`{"type":"object","properties":{"host":{"type":"string","description":"host name, e.g. web-1"}}}`)},
		{Name: "clean_logs", Description: "Delete a host's rotated logs older than a week and report the space freed",
			Parameters: json.RawMessage(`{"type":"object","properties":{"host":{"type":"string","description":"host name, e.g. web-1"}}}`),
			// It deletes files: a person approves each call.
			Approval: agent.ApprovalAlways},
	}
}

// demoHost returns the host a demo tool is asked about.
func demoHost(c agent.Call) string {
	var args struct {
		Host string `json:"host"`
	}
	_ = json.Unmarshal(c.Arguments, &args)
	if args.Host == "" {
		return "web-1"
	}
	return args.Host
}

// DemoFuncs returns the Go functions behind DemoTools. Their answers are
// derived from the host name, so a demo's results are the same on every
// run; clean_logs keeps what it did per Idempotency-Key, as a real tool
// should, so a run repeated after a crash reports the same cleaning once.
func DemoFuncs() map[string]agent.Func {
	var mu sync.Mutex
	cleaned := map[string]string{}
	return map[string]agent.Func{
		"check_disk": func(_ context.Context, c agent.Call) (string, error) {
			h := demoHost(c)
			sum := sha256.Sum256([]byte(h))
			used := 70 + int(sum[0])%29
			return fmt.Sprintf(`{"host":%q,"mount":"/","used_percent":%d,"logs_gb":%d}`, h, used, 2+int(sum[1])%18), nil
		},
		"clean_logs": func(_ context.Context, c agent.Call) (string, error) {
			mu.Lock()
			defer mu.Unlock()
			if out, ok := cleaned[c.Key]; ok {
				return out, nil
			}
			h := demoHost(c)
			sum := sha256.Sum256([]byte(h))
			out := fmt.Sprintf(`{"host":%q,"deleted_files":%d,"freed_gb":%d}`, h, 10+int(sum[2])%90, 1+int(sum[1])%17)
			cleaned[c.Key] = out
			return out, nil
		},
	}
}

// namesTools reports whether a JSONL input names tools on any line (a
// "tools" key, or messages with tool calls): an embedded run without
// --tools then gives the job DemoTools.
func namesTools(r io.Reader) bool {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] != '{' || !bytes.Contains(line, []byte(`"tool`)) {
			continue
		}
		var m map[string]json.RawMessage
		if json.Unmarshal(line, &m) != nil {
			continue
		}
		if _, ok := m["tools"]; ok {
			return true
		}
		if bytes.Contains(m["messages"], []byte(`"tool_calls"`)) {
			return true
		}
	}
	return false
}
