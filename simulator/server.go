package simulator

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ReplyPrefix starts every reply; Key follows it.
const ReplyPrefix = "mock:"

// Key returns the reply key of a last user message: the first 12 hex digits
// of the SHA-256 of its content. A successful reply is ReplyPrefix + Key.
func Key(lastUserContent string) string {
	sum := sha256.Sum256([]byte(lastUserContent))
	return hex.EncodeToString(sum[:6])
}

// Server is the simulator as an http.Handler. It is safe for concurrent use.
type Server struct {
	cfg    settings
	mux    *http.ServeMux
	closed chan struct{}
	close  sync.Once
	seq    atomic.Uint64 // completion ids

	mu        sync.Mutex // guards everything below
	rng       *rand.Rand
	faults    Faults
	window    window
	failFirst map[string]int // key -> calls that reached its #fail-first directive
	stats     Stats
}

// New returns a Server for cfg, or a *ConfigError naming the invalid field.
func New(cfg Config) (*Server, error) {
	st, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	seed := uint64(st.seed)
	if st.seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	s := &Server{
		cfg:       st,
		closed:    make(chan struct{}),
		rng:       rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		faults:    st.faults,
		window:    window{rpm: st.rpm, tpm: st.tpm},
		failFirst: map[string]int{},
		stats:     newStats(),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", s.handleChat)
	mux.HandleFunc("POST /v1/embeddings", s.handleEmbeddings)
	mux.HandleFunc("GET /v1/models", s.handleModels)
	mux.HandleFunc("GET /admin/stats", s.handleStats)
	mux.HandleFunc("GET /admin/faults", s.handleGetFaults)
	mux.HandleFunc("PUT /admin/faults", s.handlePutFaults)
	mux.HandleFunc("POST /admin/reset", s.handleReset)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	s.mux = mux
	return s, nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, r)
}

// Close releases the requests held open by the timeout fault and interrupts
// simulated latency; those requests end without a response. Calls arriving
// afterwards are still answered, except that timeout ends them at once.
// Close does not stop an http.Server serving s (see Running).
func (s *Server) Close() {
	s.close.Do(func() { close(s.closed) })
}

// Stats returns a copy of the statistics.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats.clone()
}

// Faults returns the current random fault mix.
func (s *Server) Faults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults
}

// SetFaults replaces the random fault mix.
func (s *Server) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
}

// Reset clears the statistics, the #fail-first counters and the RPM/TPM
// window; configuration and the fault mix are kept.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats = newStats()
	s.failFirst = map[string]int{}
	s.window.reset()
}

func (s *Server) authorized(r *http.Request) bool {
	if s.cfg.apiKey == "" {
		return true
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(s.cfg.apiKey)) == 1
}

// models are the ids GET /v1/models lists; chat completions accept any.
var models = []string{"gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "mock"}

func (s *Server) handleModels(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(r) {
		errInvalidAPIKey().write(w)
		return
	}
	type model struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Created int64  `json:"created"`
		OwnedBy string `json:"owned_by"`
	}
	list := struct {
		Object string  `json:"object"`
		Data   []model `json:"data"`
	}{Object: "list"}
	for _, id := range models {
		list.Data = append(list.Data, model{ID: id, Object: "model", Created: 1700000000, OwnedBy: "mockllm"})
	}
	jsonResponse(http.StatusOK, list).write(w)
}

func (s *Server) handleStats(w http.ResponseWriter, r *http.Request) {
	withTimes := r.URL.Query().Get("times") == "1"
	jsonResponse(http.StatusOK, s.Stats().wire(withTimes)).write(w)
}

func (s *Server) handleGetFaults(w http.ResponseWriter, _ *http.Request) {
	jsonResponse(http.StatusOK, map[string]string{"faults": s.Faults().String()}).write(w)
}

func (s *Server) handlePutFaults(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil {
		errInvalidRequest("read body: "+err.Error(), nil).write(w)
		return
	}
	f, err := ParseFaults(string(body))
	if err != nil {
		errInvalidRequest(err.Error(), nil).write(w)
		return
	}
	s.SetFaults(f)
	jsonResponse(http.StatusOK, map[string]string{"faults": f.String()}).write(w)
}

func (s *Server) handleReset(w http.ResponseWriter, _ *http.Request) {
	s.Reset()
	w.WriteHeader(http.StatusNoContent)
}

// response is an answer decided before it is delivered, so that stats are
// recorded and latency applied in one place.
type response struct {
	status      int
	contentType string
	header      map[string]string
	body        []byte
	usage       *usage // set on a 200 chat completion
	hold        bool   // timeout: never answer
	reset       bool   // close the connection without answering
}

func (r response) write(w http.ResponseWriter) {
	h := w.Header()
	for k, v := range r.header {
		h.Set(k, v)
	}
	h.Set("Content-Type", r.contentType)
	w.WriteHeader(r.status)
	_, _ = w.Write(r.body)
}

func jsonResponse(status int, v any) response {
	b, err := json.Marshal(v)
	if err != nil {
		// Every value marshalled here is built from strings and numbers.
		panic("simulator: encode response: " + err.Error())
	}
	return response{status: status, contentType: "application/json", body: append(b, '\n')}
}
