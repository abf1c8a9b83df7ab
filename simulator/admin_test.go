package simulator_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/llmfleet/llmfleet/simulator"
)

type statsBody struct {
	Calls          int                 `json:"calls"`
	ByStatus       map[string]int      `json:"by_status"`
	ByContent      map[string]int      `json:"by_content"`
	TokensIn       int                 `json:"tokens_in"`
	TokensOut      int                 `json:"tokens_out"`
	TimesByContent map[string][]string `json:"times_by_content"`
}

func (b *testBundle) stats(t *testing.T, query string) (statsBody, map[string]json.RawMessage) {
	t.Helper()
	resp, body := b.do(t, http.MethodGet, "/admin/stats"+query, nil, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("stats: status %d", resp.StatusCode)
	}
	var s statsBody
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &s); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatal(err)
	}
	return s, raw
}

func TestStats(t *testing.T) {
	t.Parallel()
	clk := newClock()
	b := setup(t, simulator.Config{Now: clk.Now})

	var tokensIn, tokensOut int
	for i := range 3 {
		resp, err := b.chat(t, "alpha")
		if err != nil {
			t.Fatal(err)
		}
		tokensIn += resp.Usage.PromptTokens
		tokensOut += resp.Usage.CompletionTokens
		clk.Advance(time.Duration(i+1) * 1500 * time.Millisecond)
	}
	if _, err := b.chat(t, "beta #fail:503"); err == nil {
		t.Fatal("want a 503")
	}
	b.do(t, http.MethodPost, "/v1/chat/completions", "not json", nil)

	s, raw := b.stats(t, "")
	if s.Calls != 5 {
		t.Errorf("calls = %d, want 5", s.Calls)
	}
	if want := map[string]int{"200": 3, "503": 1, "400": 1}; fmt.Sprint(s.ByStatus) != fmt.Sprint(want) {
		t.Errorf("by_status = %v, want %v", s.ByStatus, want)
	}
	if want := map[string]int{key("alpha"): 3, key("beta #fail:503"): 1}; fmt.Sprint(s.ByContent) != fmt.Sprint(want) {
		t.Errorf("by_content = %v, want %v", s.ByContent, want)
	}
	if s.TokensIn != tokensIn || s.TokensOut != tokensOut {
		t.Errorf("tokens in %d out %d, want %d %d", s.TokensIn, s.TokensOut, tokensIn, tokensOut)
	}
	if _, ok := raw["times_by_content"]; ok {
		t.Error("times_by_content without ?times=1")
	}

	s, _ = b.stats(t, "?times=1")
	want := []string{"2026-03-01T12:00:00.000Z", "2026-03-01T12:00:01.500Z", "2026-03-01T12:00:04.500Z"}
	if got := s.TimesByContent[key("alpha")]; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("times of alpha = %v, want %v", got, want)
	}

	// Real clock: the format holds for any time.
	b2 := setup(t, simulator.Config{})
	if _, err := b2.chat(t, "gamma"); err != nil {
		t.Fatal(err)
	}
	s, _ = b2.stats(t, "?times=1")
	format := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)
	if ts := s.TimesByContent[key("gamma")]; len(ts) != 1 || !format.MatchString(ts[0]) {
		t.Errorf("times = %v, want one RFC 3339 UTC time with milliseconds", ts)
	} else if _, err := time.Parse(time.RFC3339, ts[0]); err != nil {
		t.Errorf("time %q does not parse as RFC 3339: %v", ts[0], err)
	}

	// Reset clears everything.
	if resp, _ := b.do(t, http.MethodPost, "/admin/reset", nil, nil); resp.StatusCode != http.StatusNoContent {
		t.Errorf("reset: status %d", resp.StatusCode)
	}
	if s, _ := b.stats(t, "?times=1"); s.Calls != 0 || len(s.ByStatus) != 0 || len(s.ByContent) != 0 || len(s.TimesByContent) != 0 || s.TokensIn != 0 {
		t.Errorf("after reset: %+v", s)
	}
}

func TestAdminFaults(t *testing.T) {
	t.Parallel()
	b := setup(t, simulator.Config{})

	put := func(body string) (*http.Response, []byte) {
		return b.do(t, http.MethodPut, "/admin/faults", body, nil)
	}
	if resp, body := put("503=1"); resp.StatusCode != 200 {
		t.Fatalf("PUT 503=1: status %d (%s)", resp.StatusCode, body)
	}
	for i := range 5 {
		_, err := b.chat(t, fmt.Sprintf("item %d", i))
		var apiErr *openai.APIError
		if !errors.As(err, &apiErr) || apiErr.HTTPStatusCode != 503 {
			t.Fatalf("call %d during outage: err = %v, want 503", i, err)
		}
	}
	_, body := b.do(t, http.MethodGet, "/admin/faults", nil, nil)
	if !strings.Contains(string(body), `"503=1"`) {
		t.Errorf("GET /admin/faults = %s", body)
	}

	resp, body := put("429=0.5,bogus=0.1")
	if resp.StatusCode != 400 || !strings.Contains(decodeError(t, body).Error.Message, `"bogus=0.1"`) {
		t.Errorf("bad mix: status %d body %s, want 400 naming the entry", resp.StatusCode, body)
	}
	if _, err := b.chat(t, "still down"); err == nil {
		t.Error("a rejected PUT changed the mix")
	}

	if resp, _ := put(""); resp.StatusCode != 200 {
		t.Fatalf("PUT empty: status %d", resp.StatusCode)
	}
	if _, err := b.chat(t, "back up"); err != nil {
		t.Errorf("after clearing: %v", err)
	}
}

func TestParseFaults(t *testing.T) {
	t.Parallel()
	valid := map[string]string{
		"":                  "",
		"429=0.05,500=0.02": "429=0.05,500=0.02",
		" 503 = 1 ":         "503=1",
		"html502=0.01, timeout=0.01,quota=0,reset=0.1,": "html502=0.01,timeout=0.01,quota=0,reset=0.1",
		"400=0.1,401=0.1,403=0.1,404=0.1,502=0.1,504=0.1,529=0.1,overflow=0.1,filter=0.1,badjson=0.05,empty=0.025,html200=0.025": "",
	}
	for in, want := range valid {
		f, err := simulator.ParseFaults(in)
		if err != nil {
			t.Errorf("ParseFaults(%q): %v", in, err)
			continue
		}
		if want != "" && f.String() != want {
			t.Errorf("ParseFaults(%q) = %q, want %q", in, f.String(), want)
		}
	}
	invalid := map[string]string{
		"429":               `"429"`,
		"429=":              `"429="`,
		"=0.1":              `"=0.1"`,
		"418=0.1":           `"418=0.1"`,
		"500=abc":           `"500=abc"`,
		"500=1.5":           `"500=1.5"`,
		"500=-0.1":          `"500=-0.1"`,
		"500=NaN":           `"500=NaN"`,
		"500=0.1,500=0.2":   `"500=0.2"`,
		"500=0.6,503=0.6":   `"503=0.6"`,
		"429=0.1,Timeout=1": `"Timeout=1"`,
	}
	for in, named := range invalid {
		_, err := simulator.ParseFaults(in)
		if err == nil || !strings.Contains(err.Error(), named) {
			t.Errorf("ParseFaults(%q) = %v, want an error naming %s", in, err, named)
		}
	}
}

func TestNewValidatesConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		cfg   simulator.Config
		field string
	}{
		{simulator.Config{Latency: "fast"}, "Latency"},
		{simulator.Config{Latency: "200ms-10ms"}, "Latency"},
		{simulator.Config{Latency: "-5ms"}, "Latency"},
		{simulator.Config{RPM: -1}, "RPM"},
		{simulator.Config{TPM: -1}, "TPM"},
		{simulator.Config{RetryAfter: -1}, "RetryAfter"},
		{simulator.Config{ContextLimit: -1}, "ContextLimit"},
		{simulator.Config{Faults: "500=2"}, "Faults"},
	}
	for _, tt := range tests {
		_, err := simulator.New(tt.cfg)
		var cfgErr *simulator.ConfigError
		if !errors.As(err, &cfgErr) || cfgErr.Field != tt.field || !strings.Contains(err.Error(), tt.field) {
			t.Errorf("New(%+v) = %v, want a ConfigError for %s", tt.cfg, err, tt.field)
		}
	}
	for _, lat := range []string{"", "20ms", "10ms-200ms", "0s-1s", "5ms-5ms"} {
		if _, err := simulator.New(simulator.Config{Latency: lat}); err != nil {
			t.Errorf("Latency %q: %v", lat, err)
		}
	}
}

func TestTimeout(t *testing.T) {
	t.Parallel()
	t.Run("held until the client gives up", func(t *testing.T) {
		t.Parallel()
		b := setup(t, simulator.Config{})
		ctx, cancel := context.WithTimeout(t.Context(), 150*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := b.openai.CreateChatCompletion(ctx, userRequest("hang #fail:timeout"))
		if !isContextErr(err) {
			t.Fatalf("err = %v, want the client's deadline", err)
		}
		if elapsed := time.Since(start); elapsed < 150*time.Millisecond {
			t.Errorf("answered after %v, before the client's deadline", elapsed)
		}
		if got := b.srv.Stats().ByStatus["timeout"]; got != 1 {
			t.Errorf("by_status timeout = %d, want 1", got)
		}
	})

	t.Run("Close releases held requests", func(t *testing.T) {
		t.Parallel()
		b := setup(t, simulator.Config{})
		const n = 3
		errs := make(chan error, n)
		for i := range n {
			go func() {
				_, err := b.openai.CreateChatCompletion(context.Background(), userRequest(fmt.Sprintf("hang %d #fail:timeout", i)))
				errs <- err
			}()
		}
		waitFor(t, "requests held", func() bool { return b.srv.Stats().ByStatus["timeout"] == n })
		b.srv.Close() // the Server alone, not the http.Server: only the release can end them
		for range n {
			select {
			case err := <-errs:
				var apiErr *openai.APIError
				if err == nil || errors.As(err, &apiErr) {
					t.Errorf("released request: err = %v, want a connection error", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("held request not released by Close")
			}
		}
	})
}

func TestLatency(t *testing.T) {
	t.Parallel()
	t.Run("delays every answer", func(t *testing.T) {
		t.Parallel()
		b := setup(t, simulator.Config{Latency: "40ms-60ms"})
		for _, content := range []string{"ok", "error #fail:500"} {
			start := time.Now()
			b.postChat(t, content)
			if elapsed := time.Since(start); elapsed < 40*time.Millisecond {
				t.Errorf("%q answered in %v, want at least 40ms", content, elapsed)
			}
		}
	})
	t.Run("client giving up is counted", func(t *testing.T) {
		t.Parallel()
		b := setup(t, simulator.Config{Latency: "10s"})
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		if _, err := b.openai.CreateChatCompletion(ctx, userRequest("slow")); !isContextErr(err) {
			t.Fatalf("err = %v, want the client's deadline", err)
		}
		waitFor(t, "canceled counted", func() bool { return b.srv.Stats().ByStatus["canceled"] == 1 })
	})
}

func TestSeedMakesFaultsReproducible(t *testing.T) {
	t.Parallel()
	sequence := func() string {
		b := setup(t, simulator.Config{Faults: "500=0.3,429=0.2", Seed: 42})
		var got []string
		for i := range 30 {
			resp, _ := b.postChat(t, fmt.Sprint("item ", i))
			got = append(got, fmt.Sprint(resp.StatusCode))
		}
		return strings.Join(got, ",")
	}
	first, second := sequence(), sequence()
	if first != second {
		t.Errorf("same seed, different faults:\n%s\n%s", first, second)
	}
	if !strings.Contains(first, "200") || !strings.Contains(first, "500") || !strings.Contains(first, "429") {
		t.Errorf("30 calls with 50%% faults gave %s", first)
	}
}

func TestConcurrentClients(t *testing.T) {
	t.Parallel()
	b := setup(t, simulator.Config{Faults: "500=0.2,429=0.1,empty=0.05", Latency: "0ms-2ms", Seed: 7})
	const clients, calls = 40, 10
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range calls {
				content := fmt.Sprintf("client %d call %d", c, i%3)
				if i == 0 {
					content += " #fail-first:1:503"
				}
				resp, err := b.chat(t, content)
				if err != nil {
					var apiErr *openai.APIError
					if !errors.As(err, &apiErr) {
						t.Errorf("%s: %v", content, err)
					}
					continue
				}
				if got := resp.Choices[0].Message.Content; got != "" && got != "mock:"+key(content) {
					t.Errorf("%s: content %q", content, got)
				}
			}
		}()
	}
	wg.Wait()
	s, _ := b.stats(t, "")
	sum := 0
	for _, n := range s.ByStatus {
		sum += n
	}
	if s.Calls != clients*calls || sum != s.Calls {
		t.Errorf("calls %d, by_status sums to %d, want %d", s.Calls, sum, clients*calls)
	}
	if s.ByStatus["503"] != clients {
		t.Errorf("503s = %d, want one per client from #fail-first", s.ByStatus["503"])
	}
}

func TestStartStopsWithContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	run, err := simulator.Start(ctx, simulator.Config{}, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(run.URL(), "http://127.0.0.1:") || !strings.HasSuffix(run.URL(), "/v1") {
		t.Errorf("URL = %q", run.URL())
	}
	cancel()
	select {
	case <-run.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("server still serving after ctx was cancelled")
	}
	if err := run.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := run.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := simulator.Start(t.Context(), simulator.Config{}, "127.0.0.1:99999"); err == nil {
		t.Error("Start on a bad address succeeded")
	}
}

func TestSilentConnectionDoesNotDelayShutdown(t *testing.T) {
	t.Parallel()
	run, err := simulator.Start(t.Context(), simulator.Config{}, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var d net.Dialer
	conn, err := d.DialContext(t.Context(), "tcp", run.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	if err := run.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	// net/http alone would wait 5 s for a connection that sent nothing.
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Errorf("Close took %v", elapsed)
	}
}
