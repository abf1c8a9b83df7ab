package models

import (
	"errors"
	"math"
	"strings"
	"testing"
	"testing/iotest"
)

func TestLookup(t *testing.T) {
	t.Parallel()
	builtin := Builtin()
	tests := []struct {
		name, model string
		want        string // the built-in entry expected; "" for unknown
	}{
		{"exact", "gpt-4o", "gpt-4o"},
		{"exact mini", "gpt-4o-mini", "gpt-4o-mini"},
		{"exact simulator", "mock", "mock"},
		{"dated snapshot", "gpt-4o-2024-08-06", "gpt-4o"},
		{"dated mini is mini, not base", "gpt-4o-mini-2024-07-18", "gpt-4o-mini"},
		{"dated gpt-4.1 nano", "gpt-4.1-nano-2025-04-14", "gpt-4.1-nano"},
		{"gpt-4-turbo snapshot is turbo, not gpt-4", "gpt-4-turbo-2024-04-09", "gpt-4-turbo"},
		{"gpt-4 snapshot", "gpt-4-0613", "gpt-4"},
		{"gpt-3.5 snapshot", "gpt-3.5-turbo-0125", "gpt-3.5-turbo"},
		{"o3-mini snapshot", "o3-mini-2025-01-31", "o3-mini"},
		{"o1-mini is not o1", "o1-mini-2024-09-12", "o1-mini"},
		{"gpt-5 chat", "gpt-5-chat-latest", "gpt-5"},
		{"case-insensitive", "GPT-4o-Mini", "gpt-4o-mini"},
		{"fine-tune", "ft:gpt-4o-mini:acme::abc123", "gpt-4o-mini"},
		{"fine-tune of a snapshot", "ft:gpt-4o-mini-2024-07-18:acme:custom:abc123", "gpt-4o-mini"},
		{"router prefix", "openai/gpt-4o", "gpt-4o"},
		{"router prefix and snapshot", "openrouter/openai/gpt-4.1-mini-2025-04-14", "gpt-4.1-mini"},
		{"unknown", "llama3.1:8b", ""},
		{"unknown with known prefix but no dash", "gpt-4.5-preview", ""},
		{"unknown: key must end at a dash", "gpt-4oo", ""},
		{"unknown other provider", "claude-sonnet-4", ""},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := builtin.Lookup(tt.model)
			if tt.want == "" {
				if ok {
					t.Fatalf("Lookup(%q) = %+v, true; want unknown", tt.model, got)
				}
				return
			}
			if !ok || got != builtin[tt.want] {
				t.Fatalf("Lookup(%q) = %+v, %t; want %s's %+v", tt.model, got, ok, tt.want, builtin[tt.want])
			}
		})
	}

	t.Run("exact name beats normalization", func(t *testing.T) {
		t.Parallel()
		ft := Model{ContextWindow: 1000}
		tbl := Builtin().With(Table{"ft:gpt-4o-mini:acme::abc123": ft, "openai/gpt-4o": ft})
		for _, name := range []string{"ft:gpt-4o-mini:acme::abc123", "openai/gpt-4o"} {
			if got, ok := tbl.Lookup(name); !ok || got.ContextWindow != 1000 {
				t.Errorf("Lookup(%q) = %+v, %t; want its own entry", name, got, ok)
			}
		}
	})
	t.Run("user keys match snapshots too", func(t *testing.T) {
		t.Parallel()
		tbl := Table{"My-Llama": {ContextWindow: 131072}}
		if got, ok := tbl.Lookup("vllm/my-llama-3.1-70b"); !ok || got.ContextWindow != 131072 {
			t.Errorf("Lookup = %+v, %t; want My-Llama's entry", got, ok)
		}
	})
}

func TestBuiltin(t *testing.T) {
	t.Parallel()
	t.Run("a fresh copy each call", func(t *testing.T) {
		t.Parallel()
		a := Builtin()
		a["gpt-4o"] = Model{}
		delete(a, "mock")
		b := Builtin()
		if b["gpt-4o"].ContextWindow != 128000 {
			t.Errorf("gpt-4o = %+v after a caller changed its copy", b["gpt-4o"])
		}
		if _, ok := b["mock"]; !ok {
			t.Error("mock missing after a caller deleted it from its copy")
		}
	})
	t.Run("every entry has limits, the output fits the window", func(t *testing.T) {
		t.Parallel()
		for name, m := range Builtin() {
			if strings.HasPrefix(name, "text-embedding-") {
				// Embedding models answer vectors: no output, no output price.
				if m.ContextWindow <= 0 || m.MaxOutput != 0 || m.InputUSDPerMTok <= 0 || m.OutputUSDPerMTok != 0 {
					t.Errorf("%s: %+v", name, m)
				}
				continue
			}
			if m.ContextWindow <= 0 || m.MaxOutput <= 0 || m.MaxOutput > m.ContextWindow {
				t.Errorf("%s: %+v", name, m)
			}
			if name != "mock" && (m.InputUSDPerMTok <= 0 || m.OutputUSDPerMTok < m.InputUSDPerMTok) {
				t.Errorf("%s: prices %+v", name, m)
			}
		}
	})
	t.Run("published figures", func(t *testing.T) {
		t.Parallel()
		tbl := Builtin()
		for name, want := range map[string]Model{
			"gpt-4o":       {128000, 16384, 2.50, 10.00},
			"gpt-4o-mini":  {128000, 16384, 0.15, 0.60},
			"gpt-4.1":      {1047576, 32768, 2.00, 8.00},
			"gpt-4":        {8192, 8192, 30.00, 60.00},
			"o3":           {200000, 100000, 2.00, 8.00},
			"gpt-5":        {400000, 128000, 1.25, 10.00},
			"gpt-5-nano":   {400000, 128000, 0.05, 0.40},
			"mock":         {8192, 4096, 0, 0},
			"gpt-4.1-nano": {1047576, 32768, 0.10, 0.40},
		} {
			if got := tbl[name]; got != want {
				t.Errorf("%s = %+v, want %+v", name, got, want)
			}
		}
	})
}

func TestWith(t *testing.T) {
	t.Parallel()
	base := Table{
		"a": {ContextWindow: 100, MaxOutput: 10, InputUSDPerMTok: 1, OutputUSDPerMTok: 2},
		"b": {ContextWindow: 200, MaxOutput: 20, InputUSDPerMTok: 3, OutputUSDPerMTok: 4},
	}
	overrides := Table{
		"a": {InputUSDPerMTok: 0.5},                    // one field: the others stay
		"c": {ContextWindow: 300, OutputUSDPerMTok: 6}, // a new model, as given
	}
	got := base.With(overrides)
	want := Table{
		"a": {ContextWindow: 100, MaxOutput: 10, InputUSDPerMTok: 0.5, OutputUSDPerMTok: 2},
		"b": {ContextWindow: 200, MaxOutput: 20, InputUSDPerMTok: 3, OutputUSDPerMTok: 4},
		"c": {ContextWindow: 300, OutputUSDPerMTok: 6},
	}
	if len(got) != len(want) {
		t.Fatalf("With = %v, want %v", got, want)
	}
	for name, m := range want {
		if got[name] != m {
			t.Errorf("With: %s = %+v, want %+v", name, got[name], m)
		}
	}
	if base["a"].InputUSDPerMTok != 1 || len(base) != 2 {
		t.Errorf("With modified the base: %v", base)
	}
	if len(overrides) != 2 || overrides["a"].ContextWindow != 0 {
		t.Errorf("With modified the overrides: %v", overrides)
	}
	t.Run("nil tables", func(t *testing.T) {
		t.Parallel()
		if got := Table(nil).With(nil); got == nil || len(got) != 0 {
			t.Errorf("nil.With(nil) = %#v, want an empty table", got)
		}
		if got := Table(nil).With(Table{"x": {MaxOutput: 1}}); got["x"].MaxOutput != 1 {
			t.Errorf("nil.With(x) = %v", got)
		}
	})
}

func TestLoad(t *testing.T) {
	t.Parallel()
	t.Run("good file", func(t *testing.T) {
		t.Parallel()
		got, err := Load(strings.NewReader(`{
  "gpt-4o": {"input_usd_per_mtok": 2.0},
  "my-llama-70b": {"context_window": 131072, "max_output": 8192,
                   "input_usd_per_mtok": 0, "output_usd_per_mtok": 0.9},
  "empty": {}
}`))
		if err != nil {
			t.Fatal(err)
		}
		want := Table{
			"gpt-4o":       {InputUSDPerMTok: 2.0},
			"my-llama-70b": {ContextWindow: 131072, MaxOutput: 8192, OutputUSDPerMTok: 0.9},
			"empty":        {},
		}
		if len(got) != len(want) {
			t.Fatalf("Load = %v, want %v", got, want)
		}
		for name, m := range want {
			if got[name] != m {
				t.Errorf("%s = %+v, want %+v", name, got[name], m)
			}
		}
		merged := Builtin().With(got)
		if m, _ := merged.Lookup("gpt-4o-2024-08-06"); m.InputUSDPerMTok != 2.0 || m.ContextWindow != 128000 {
			t.Errorf("merged gpt-4o = %+v, want the built-in limits with the user's price", m)
		}
	})
	t.Run("empty object", func(t *testing.T) {
		t.Parallel()
		got, err := Load(strings.NewReader(" {} \n"))
		if err != nil || len(got) != 0 {
			t.Errorf("Load({}) = %v, %v; want an empty table", got, err)
		}
	})

	bad := []struct {
		name  string
		input string
		want  []string // substrings of the error
	}{
		{"unknown field", "{\n  \"gpt-4o\": {\"context_window\": 1},\n  \"x\": {\"context_windw\": 1}\n}",
			[]string{"line 3", `model "x"`, `unknown field "context_windw"`}},
		{"negative window", "{\"x\": {\"context_window\": -1}}",
			[]string{`model "x"`, "context_window", "negative"}},
		{"negative max output", "{\"x\": {\"max_output\": -5}}",
			[]string{`model "x"`, "max_output", "negative"}},
		{"negative price", "{\"x\": {\"output_usd_per_mtok\": -0.5}}",
			[]string{`model "x"`, "output_usd_per_mtok", "negative"}},
		{"wrong type", "{\"x\": {\"context_window\": \"128k\"}}",
			[]string{`model "x"`, "context_window", "string"}},
		{"fractional window", "{\"x\": {\"context_window\": 1.5}}",
			[]string{`model "x"`, "context_window"}},
		{"model not an object", "{\"x\": 128000}",
			[]string{`model "x"`, "object"}},
		{"bad JSON names line and offset", "{\n  \"a\": {},\n  \"b\": {\"max_output\": 1,}\n}",
			[]string{"line 3, column 25", "byte offset 37", "invalid character"}},
		{"missing comma", "{\n  \"a\": {}\n  \"b\": {}\n}",
			[]string{"line 3", "invalid character"}},
		{"truncated", "{\"a\": {}", []string{"line 1", "unexpected end"}},
		{"empty input", "", []string{"unexpected end"}},
		{"not an object", "[]", []string{"object"}},
		{"data after the object", "{} {}", []string{"after the object"}},
		{"repeated model", "{\"a\": {}, \"a\": {\"max_output\": 1}}", []string{`model "a"`, "twice"}},
		{"empty model name", "{\"\": {}}", []string{"empty model name"}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Load(strings.NewReader(tt.input))
			if err == nil {
				t.Fatalf("Load = %v, want an error", got)
			}
			for _, s := range tt.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
		})
	}

	t.Run("read error", func(t *testing.T) {
		t.Parallel()
		boom := errors.New("boom")
		if _, err := Load(iotest.ErrReader(boom)); !errors.Is(err, boom) {
			t.Errorf("Load = %v, want the reader's error", err)
		}
	})
}

func TestCostUSD(t *testing.T) {
	t.Parallel()
	builtin := Builtin()
	tests := []struct {
		model       string
		in, out     int
		want        float64
		description string
	}{
		{"gpt-4o", 1_000_000, 1_000_000, 12.50, "a million each way"},
		{"gpt-4o", 1000, 500, 0.0025 + 0.005, "a typical item"},
		{"gpt-4o-mini", 124, 0, 124 * 0.15 / 1e6, "prompt only"},
		{"gpt-5-nano", 0, 2000, 2000 * 0.40 / 1e6, "completion only"},
		{"gpt-4", 8192, 8192, 8192*30.0/1e6 + 8192*60.0/1e6, "a full gpt-4 window"},
		{"mock", 5000, 5000, 0, "the simulator is free"},
		{"gpt-4o", 0, 0, 0, "nothing used"},
	}
	for _, tt := range tests {
		got := builtin[tt.model].CostUSD(tt.in, tt.out)
		if math.Abs(got-tt.want) > 1e-12 {
			t.Errorf("%s (%s): CostUSD(%d, %d) = %v, want %v", tt.model, tt.description, tt.in, tt.out, got, tt.want)
		}
	}
	if got := (Model{}).CostUSD(1000, 1000); got != 0 {
		t.Errorf("unknown prices: CostUSD = %v, want 0", got)
	}
}
