package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/llmfleet/llmfleet/simulator"
)

type embStats struct {
	EmbeddingCalls  int `json:"embedding_calls"`
	EmbeddingInputs int `json:"embedding_inputs"`
}

func (f *fleet) embStats(t *testing.T) embStats {
	t.Helper()
	r, err := httpGetJSON(f.mockURL + "/admin/stats")
	if err != nil {
		t.Fatal(err)
	}
	var s embStats
	if err := json.Unmarshal(r, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

const reviewSchema = `{"type": "object", "required": ["reply", "sentiment"], "additionalProperties": false,
  "properties": {"reply": {"type": "string"}, "sentiment": {"enum": ["positive", "negative"]}}}`

// A json_schema answer is checked here: one that misses the schema is
// re-asked (with the answer and the errors) and then kept, parsed; one that
// never meets it fails invalid_output naming the property, after
// --max-attempts calls.
func TestStructuredOutputReasksAndFails(t *testing.T) {
	t.Parallel()
	f := newFleet(t, "--seed", "67")
	dir := t.TempDir()
	schemaFile := filepath.Join(dir, "review.json")
	os.WriteFile(schemaFile, []byte(reviewSchema), 0o644)
	prompts := map[string]string{
		"ok":    "great product",
		"reask": "mixed feelings #fail-first:1:schemamiss",
		"never": "unreadable #fail:schemamiss",
	}
	file := writeJSONL(t,
		map[string]any{"id": "ok", "prompt": prompts["ok"]},
		map[string]any{"id": "reask", "prompt": prompts["reask"]},
		map[string]any{"id": "never", "prompt": prompts["never"]})
	if _, r := f.submit(t, file, "--job", "schema", "--schema", schemaFile, "--max-attempts", "3"); r.code != 0 {
		t.Fatalf("run exit %d: %s", r.code, r.stderr)
	}
	f.worker(t, "--concurrency", "3")
	if wr := runCmdTimeout(t, f.env, time.Minute, "status", "--job", "schema", "--wait", "--interval", "200ms"); wr.code != 4 {
		t.Fatalf("status --wait exit %d, want 4", wr.code)
	}
	type res struct {
		ID       string          `json:"id"`
		Output   string          `json:"output"`
		Attempts int             `json:"attempts"`
		Parsed   json.RawMessage `json:"parsed"`
	}
	got := map[string]res{}
	for _, r := range readLines[res](t, exportTo(t, f, "schema")) {
		got[r.ID] = r
	}
	stats := f.stats(t)
	for _, id := range []string{"ok", "reask"} {
		var p struct{ Reply, Sentiment string }
		if err := json.Unmarshal(got[id].Parsed, &p); err != nil || p.Sentiment != "positive" || p.Reply != "mock:"+key(prompts[id]) {
			t.Errorf("item %s: parsed %s (%v), want the simulator's conforming answer", id, got[id].Parsed, err)
		}
	}
	if got["ok"].Attempts != 1 || stats.ByContent[key(prompts["ok"])] != 1 {
		t.Errorf("ok: %d attempts, %d calls; want 1", got["ok"].Attempts, stats.ByContent[key(prompts["ok"])])
	}
	if got["reask"].Attempts != 2 || stats.ByContent[key(prompts["reask"])] != 2 {
		t.Errorf("reask: %d attempts, %d calls; want 2 (re-asked once)", got["reask"].Attempts, stats.ByContent[key(prompts["reask"])])
	}
	fl := f.failed(t, "--job", "schema")
	if len(fl.Items) != 1 || fl.Items[0].ID != "never" || fl.Items[0].Class != "invalid_output" || fl.Items[0].Attempts != 3 ||
		!strings.Contains(fl.Items[0].Reason, "sentiment") || !strings.Contains(fl.Items[0].Reason, "unexpected") {
		t.Errorf("failed %+v, want never as invalid_output after 3 attempts naming the missing sentiment and the extra property", fl.Items)
	}
	if c := stats.ByContent[key(prompts["never"])]; c != 3 {
		t.Errorf("never: %d calls, want 3", c)
	}
}

// An OpenAI Batch API file with chat and embedding lines, and bad lines,
// runs as one job: the bad lines are named, the export in OpenAI's batch
// output format parses with its published fields, each line holds its own
// answer, and the embeddings equal the simulator's vectors, sent in fewer
// requests than inputs; an input that fails its pack fails alone.
func TestOpenAIBatchFileRoundTrip(t *testing.T) {
	t.Parallel()
	f := newFleet(t, "--seed", "71")
	var lines []string
	add := func(v any) {
		b, _ := json.Marshal(v)
		lines = append(lines, string(b))
	}
	chat := func(id, prompt string) map[string]any {
		return map[string]any{"custom_id": id, "method": "POST", "url": "/v1/chat/completions",
			"body": map[string]any{"model": "gpt-4o-mini", "messages": []map[string]string{{"role": "user", "content": prompt}}, "max_completion_tokens": 50}}
	}
	emb := func(id string, input any) map[string]any {
		return map[string]any{"custom_id": id, "method": "POST", "url": "/v1/embeddings",
			"body": map[string]any{"model": "text-embedding-3-small", "input": input, "dimensions": 4}}
	}
	add(chat("c1", "first question"))
	add(chat("c2", "second question"))
	const nEmb = 12
	for i := range nEmb {
		add(emb(fmt.Sprintf("e%02d", i), fmt.Sprintf("text number %d", i)))
	}
	add(emb("multi", []string{"alpha", "beta"}))
	add(emb("bad-input", "this one breaks #fail:400"))
	add(map[string]any{"custom_id": "old", "method": "POST", "url": "/v1/completions", "body": map[string]any{"prompt": "x"}})
	add(map[string]any{"custom_id": "nobody", "method": "POST", "url": "/v1/chat/completions"})
	add(map[string]any{"custom_id": "n2", "method": "POST", "url": "/v1/chat/completions",
		"body": map[string]any{"model": "m", "messages": []map[string]string{{"role": "user", "content": "x"}}, "n": 2}})
	add(chat("c1", "c1 again, other content"))
	file := filepath.Join(t.TempDir(), "batch.jsonl")
	os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o644)

	sum, r := f.submit(t, file, "--job", "batch")
	if r.code != 3 || sum.Rejected != 4 || sum.Total != 2+nEmb+2 {
		t.Fatalf("run: exit %d, %+v, want exit 3 with 4 rejected lines and %d items", r.code, sum, 2+nEmb+2)
	}
	wantRej := map[int]string{2 + nEmb + 3: "/v1/completions", 2 + nEmb + 4: "body is missing", 2 + nEmb + 5: "body.n", 2 + nEmb + 6: "different content"}
	for _, rl := range sum.RejectedLines {
		if w, ok := wantRej[rl.Line]; !ok || !strings.Contains(rl.Error, w) {
			t.Errorf("rejected line %d: %q, want one naming %q", rl.Line, rl.Error, wantRej[rl.Line])
		}
	}
	f.worker(t, "--concurrency", "16")
	if wr := runCmdTimeout(t, f.env, time.Minute, "status", "--job", "batch", "--wait", "--interval", "200ms"); wr.code != 4 {
		t.Fatalf("status --wait exit %d, want 4 (bad-input failed)", wr.code)
	}
	dir := t.TempDir()
	outFile, errFile := filepath.Join(dir, "out.jsonl"), filepath.Join(dir, "errors.jsonl")
	if r := f.producer(t, nil, "export", "--job", "batch", "--format", "openai-batch", "--out", outFile, "--errors", errFile); r.code != 0 {
		t.Fatalf("export: exit %d: %s", r.code, r.stderr)
	}
	// OpenAI's batch output line: id, custom_id, response {status_code,
	// request_id, body}, error. Unknown fields are refused.
	type outLine struct {
		ID       string `json:"id"`
		CustomID string `json:"custom_id"`
		Response *struct {
			StatusCode int             `json:"status_code"`
			RequestID  string          `json:"request_id"`
			Body       json.RawMessage `json:"body"`
		} `json:"response"`
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	strictLines := func(path string) []outLine {
		b, _ := os.ReadFile(path)
		var out []outLine
		for l := range strings.SplitSeq(strings.TrimSpace(string(b)), "\n") {
			var ol outLine
			dec := json.NewDecoder(strings.NewReader(l))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&ol); err != nil {
				t.Fatalf("%s: %q is not an OpenAI batch output line: %v", path, l, err)
			}
			out = append(out, ol)
		}
		return out
	}
	got := map[string]outLine{}
	for _, ol := range strictLines(outFile) {
		if !strings.HasPrefix(ol.ID, "batch_req_") || ol.Response == nil || ol.Response.StatusCode != 200 || ol.Error != nil {
			t.Errorf("output line %+v", ol)
		}
		got[ol.CustomID] = ol
	}
	if len(got) != 2+nEmb+1 {
		t.Fatalf("%d output lines, want %d", len(got), 2+nEmb+1)
	}
	for id, prompt := range map[string]string{"c1": "first question", "c2": "second question"} {
		var body struct {
			Object  string `json:"object"`
			Choices []struct {
				Message struct{ Content string } `json:"message"`
			} `json:"choices"`
			Usage struct {
				PromptTokens int `json:"prompt_tokens"`
			} `json:"usage"`
		}
		if err := json.Unmarshal(got[id].Response.Body, &body); err != nil || body.Object != "chat.completion" ||
			len(body.Choices) != 1 || body.Choices[0].Message.Content != "mock:"+key(prompt) || body.Usage.PromptTokens == 0 {
			t.Errorf("%s: body %s (%v), want the simulator's chat.completion for its own prompt", id, got[id].Response.Body, err)
		}
	}
	checkVectors := func(id string, inputs ...string) {
		t.Helper()
		var body struct {
			Object string `json:"object"`
			Data   []struct {
				Index     int       `json:"index"`
				Embedding []float64 `json:"embedding"`
			} `json:"data"`
			Usage struct {
				PromptTokens int `json:"prompt_tokens"`
			} `json:"usage"`
		}
		if err := json.Unmarshal(got[id].Response.Body, &body); err != nil || body.Object != "list" || len(body.Data) != len(inputs) {
			t.Fatalf("%s: body %s (%v)", id, got[id].Response.Body, err)
		}
		for i, in := range inputs {
			want := simulator.Embedding(in, 4)
			if body.Data[i].Index != i || len(body.Data[i].Embedding) != len(want) {
				t.Fatalf("%s: data[%d] %+v", id, i, body.Data[i])
			}
			for k := range want {
				if math.Abs(body.Data[i].Embedding[k]-float64(want[k])) > 1e-6 {
					t.Errorf("%s input %d: vector %v, want the simulator's %v", id, i, body.Data[i].Embedding, want)
					break
				}
			}
		}
	}
	for i := range nEmb {
		checkVectors(fmt.Sprintf("e%02d", i), fmt.Sprintf("text number %d", i))
	}
	checkVectors("multi", "alpha", "beta")

	errs := strictLines(errFile)
	if len(errs) != 1 || errs[0].CustomID != "bad-input" || errs[0].Error != nil ||
		errs[0].Response == nil || errs[0].Response.StatusCode != 400 || !strings.Contains(string(errs[0].Response.Body), `"code":"bad_request"`) {
		t.Errorf("errors file %+v, want bad-input alone: its 400 with a bad_request error body, error null", errs)
	}
	es := f.embStats(t)
	inputs := nEmb + 2
	if es.EmbeddingCalls >= nEmb {
		t.Errorf("%d embedding requests for %d items (%d inputs): not packed", es.EmbeddingCalls, nEmb+2, inputs)
	}
	t.Logf("%d embedding requests carried %d inputs (re-sends included) for %d items", es.EmbeddingCalls, es.EmbeddingInputs, nEmb+2)
}

func httpGetJSON(url string) ([]byte, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

// In a pack, an input the provider refuses (a 400, an input over its
// context) fails only its own item; the neighbours are sent again without
// it and are not charged for the failed request.
func TestEmbeddingPackIsolatesBadInputs(t *testing.T) {
	t.Parallel()
	f := newFleet(t, "--seed", "83", "--context-limit", "40")
	var rows []map[string]any
	for i := range 8 {
		rows = append(rows, map[string]any{"id": fmt.Sprintf("g%d", i), "input": fmt.Sprintf("good input %d", i)})
	}
	rows = append(rows,
		map[string]any{"id": "refused", "input": "refused input #fail:400"},
		map[string]any{"id": "long", "input": strings.Repeat("many words ", 60)})
	file := writeJSONL(t, rows...)
	if _, r := f.submit(t, file, "--job", "pack", "--endpoint", "embeddings", "--max-attempts", "2"); r.code != 0 {
		t.Fatalf("run: exit %d: %s", r.code, r.stderr)
	}
	f.worker(t, "--concurrency", "16")
	if wr := runCmdTimeout(t, f.env, time.Minute, "status", "--job", "pack", "--wait", "--interval", "200ms"); wr.code != 4 {
		t.Fatalf("status --wait exit %d, want 4", wr.code)
	}
	res := readLines[agentResult](t, exportTo(t, f, "pack"))
	if len(res) != 8 {
		t.Fatalf("%d results, want the 8 good items", len(res))
	}
	for _, r := range res {
		if r.Attempts != 1 {
			t.Errorf("item %s: %d attempts, want 1: a neighbour's failure is not charged", r.ID, r.Attempts)
		}
	}
	classes := map[string]string{}
	for _, it := range f.failed(t, "--job", "pack").Items {
		classes[it.ID] = it.Class
	}
	if classes["refused"] != "bad_request" || classes["long"] != "context_overflow" || len(classes) != 2 {
		t.Errorf("failed %v, want refused bad_request and long context_overflow", classes)
	}
}
