package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	openai "github.com/sashabaranov/go-openai"
)

// Error is a classified provider failure.
type Error struct {
	Class Class
	// Status is the HTTP status, 0 when no response arrived.
	Status int
	// Code is the provider's error code ("rate_limit_exceeded", ...).
	Code string
	// Message is the provider's message or the transport error, truncated
	// and scrubbed of API keys.
	Message string
	// RetryAfter is the wait the provider asked for explicitly (a
	// Retry-After or retry-after-ms header, Gemini's RetryInfo), 0 when it
	// gave none.
	RetryAfter time.Duration
	// RetryHint is a wait inferred, not asked for: stated in the message
	// ("Please try again in 20s") or in x-ratelimit-reset-* headers. It is
	// capped at a minute (a bucket that refills completely in "6m0s" must not
	// park an item for six minutes).
	RetryHint time.Duration
	// PromptTokens, CompletionTokens and ContextLimit are a context
	// overflow's numbers as the provider counted them, when it said.
	PromptTokens, CompletionTokens, ContextLimit int
	// Reask says the answer came but is not the JSON asked for (not JSON,
	// or not matching the schema): the next call shows the model its answer
	// and what is wrong with it.
	Reask bool
	// Err is the underlying error.
	Err error
}

// Wait is how long, at least, to wait before calling again for this item:
// the explicit wait or the hint, whichever is longer.
func (e *Error) Wait() time.Duration { return max(e.RetryAfter, e.RetryHint) }

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(string(e.Class))
	if e.Status != 0 {
		fmt.Fprintf(&b, ": HTTP %d", e.Status)
	}
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// ClassOf returns the class of err, or "" when err carries none.
func ClassOf(err error) Class {
	var e *Error
	if errors.As(err, &e) {
		return e.Class
	}
	return ""
}

// ErrJobDeadline is the cause the caller gives the context that enforces a
// job's deadline (context.WithDeadlineCause), so that Classify can tell an
// expired job from a slow attempt.
var ErrJobDeadline = errors.New("job deadline passed")

// ErrAttemptTimeout is the cause of the per-attempt context.
var ErrAttemptTimeout = errors.New("attempt timed out")

// maxReason bounds the provider text kept in a reason, maxCode a code.
const (
	maxReason = 500
	maxCode   = 64
)

// maxRetryAfter bounds any wait a provider asks for.
const maxRetryAfter = time.Hour

// Exchange is what the transport saw of one HTTP exchange.
type Exchange struct {
	Status int
	Header http.Header
	// Head is the start of the response body (for diagnosis).
	Head []byte
	// Body is the whole response body (API key masked).
	Body []byte
}

// Classify maps the outcome of one call to a classified error. ex is what the
// transport captured (nil when no response arrived); ctx is the attempt's
// context, whose cause tells a job deadline from an attempt timeout.
func Classify(ctx context.Context, err error, ex *Exchange) *Error {
	if err == nil {
		return nil
	}
	var already *Error
	if errors.As(err, &already) {
		return already
	}
	e := &Error{Err: err}
	if ex != nil {
		e.Status = ex.Status
	}
	var apiErr *openai.APIError
	var reqErr *openai.RequestError
	switch {
	case ctx.Err() != nil:
		// The attempt's own context ended: whatever the transport said, the
		// cause decides.
		switch cause := context.Cause(ctx); {
		case errors.Is(cause, ErrJobDeadline):
			e.Class, e.Message = Expired, "job deadline passed during the call"
		case errors.Is(cause, ErrAttemptTimeout), errors.Is(cause, context.DeadlineExceeded):
			e.Class, e.Message = Timeout, "no answer within the attempt timeout"
		default:
			e.Class, e.Message = Cancelled, "call cancelled: "+cause.Error()
		}
		e.Status = 0
		return e
	case errors.As(err, &reqErr):
		// Before *APIError: go-openai wraps an empty one in a RequestError
		// when "error" is not an object ({"error": "text"}).
		e.Status = reqErr.HTTPStatusCode
		if e.Status >= 200 && e.Status < 300 {
			e.Class = UpstreamInvalid
			e.Message = bodyReason(reqErr.Body)
			if reqErr.Err != nil && len(reqErr.Body) == 0 {
				e.Message = Scrub(reqErr.Err.Error())
			}
			e.Err = errors.New(e.Message)
			return e
		}
		// Not {"error": {...}}: the status decides, and the message comes
		// from whatever shape the body has (or the page's text).
		info, ok := errorBody(reqErr.Body)
		if !ok {
			info = errorInfo{message: bodyReason(reqErr.Body)}
			if reqErr.Err != nil && len(reqErr.Body) == 0 {
				info.message = reqErr.Err.Error()
			}
		}
		e.classifyResponse(info, ex)
	case errors.As(err, &apiErr):
		e.Status = apiErr.HTTPStatusCode
		info := errorInfo{message: apiErr.Message, code: codeString(apiErr.Code), typ: apiErr.Type}
		if ex != nil {
			// The body says more than go-openai keeps (Gemini's RetryInfo,
			// llama.cpp's token counts).
			if full, ok := errorBody(ex.Head); ok {
				info.retryDelay, info.perMinute, info.perDay = full.retryDelay, full.perMinute, full.perDay
				info.promptTokens, info.contextLimit = full.promptTokens, full.contextLimit
				if info.message == "" {
					info.message = full.message
				}
			}
			if info.message == "" {
				info.message = bodyReason(ex.Head)
			}
		}
		e.classifyResponse(info, ex)
	case ex != nil && ex.Status >= 300 && ex.Status < 400:
		// A redirect the client did not follow (300, 304, ...): an
		// upstream answering wrongly, not a failed connection.
		e.Class, e.Message = UpstreamInvalid, redirectReason(ex)
	case ex != nil && ex.Status >= 200 && ex.Status < 300:
		// go-openai could not decode a 2xx body: HTML from a proxy, or
		// truncated JSON.
		e.Class = UpstreamInvalid
		e.Message = "2xx answer is not a chat completion: " + bodyReason(ex.Head)
	case isTimeout(err):
		e.Class, e.Message = Timeout, Scrub(err.Error())
	default:
		e.Class, e.Message = Connection, Scrub(err.Error())
	}
	return e
}

// classifyResponse fills e from an error response: class, reason, waits
// and a context overflow's numbers.
func (e *Error) classifyResponse(info errorInfo, ex *Exchange) {
	// A code is provider text like the message: bounded and scrubbed.
	e.Code = Scrub(info.code)
	if len(e.Code) > maxCode {
		e.Code = e.Code[:maxCode]
	}
	msg := info.message
	if msg == "" {
		msg = info.typ
	}
	if msg == "" {
		msg = info.code
	}
	if msg == "" && ex != nil {
		msg = bodyReason(ex.Head)
	}
	class, note := classifyResponse(e.Status, info)
	e.Class = class
	e.Message = Scrub(note + msg)
	// The provider's own error may echo the key: keep only the scrubbed text.
	e.Err = errors.New(e.Message)
	if class == RateLimited || class == Overloaded || class == ServerError {
		var hint time.Duration
		if ex != nil {
			e.RetryAfter, hint = retryWaits(ex.Header, time.Now())
		}
		e.RetryAfter = min(max(e.RetryAfter, info.retryDelay), maxRetryAfter)
		if text := hintFromText(info.message); text > 0 {
			// The message speaks of this request; a reset header of the
			// whole bucket ("6m0s") may be far longer.
			hint = text
		}
		e.RetryHint = min(hint, maxHint)
	}
	if class == ContextOverflow {
		e.PromptTokens, e.CompletionTokens, e.ContextLimit = overflowNumbers(info.message, info)
	}
}

// redirectReason is the reason of a 3xx answer: go-openai followed no
// redirect, so it is neither an answer nor a failed connection.
func redirectReason(ex *Exchange) string {
	return Scrub(fmt.Sprintf("HTTP %d, not a chat completion (a redirect or proxy answer; check the base URL): %s", ex.Status, bodyReason(ex.Head)))
}

func codeString(c any) string {
	switch v := c.(type) {
	case nil:
		return ""
	case int:
		// go-openai decodes a null or numeric code as an int; 0 means none.
		if v == 0 {
			return ""
		}
		return strconv.Itoa(v)
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	default:
		b, _ := json.Marshal(v)
		return string(b)
	}
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return false
}

// IsConnection reports whether err is a transport failure (refused, reset,
// DNS, EOF), as opposed to an answer.
func IsConnection(err error) bool {
	var opErr *net.OpError
	var dnsErr *net.DNSError
	return errors.As(err, &opErr) || errors.As(err, &dnsErr) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
}

var tagRE = regexp.MustCompile(`(?s)<[^>]*>`)
var spaceRE = regexp.MustCompile(`\s+`)

// bodyReason turns a body (often an HTML error page) into a short reason.
func bodyReason(b []byte) string {
	s := string(b)
	if strings.Contains(s, "<") {
		s = tagRE.ReplaceAllString(s, " ")
	}
	s = strings.TrimSpace(spaceRE.ReplaceAllString(s, " "))
	if s == "" {
		return "empty body"
	}
	return Scrub(s)
}

var keyRE = regexp.MustCompile(`(sk-[A-Za-z0-9_\-*]{3})[A-Za-z0-9_\-*]{4,}`)
var bearerRE = regexp.MustCompile(`(?i)(bearer\s+)\S+`)

// Scrub truncates provider text to a bounded length and masks anything that
// looks like an API key, so reasons can be stored and shown.
func Scrub(s string) string {
	s = keyRE.ReplaceAllString(s, "${1}***")
	s = bearerRE.ReplaceAllString(s, "${1}***")
	if len(s) > maxReason {
		cut := maxReason
		for cut > 0 && !utf8Start(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

// RetryAfter reads the provider's requested wait from response headers, in
// all the forms providers use: retry-after-ms, Retry-After (seconds or an
// HTTP date), and x-ratelimit-reset-requests / -tokens ("1s", "6m0s",
// "20ms"; only when the matching x-ratelimit-remaining-* is 0 or absent,
// since OpenAI sends them on every answer). It returns the longest wait
// found, capped at an hour, 0 when there is none. Classify keeps the first
// two (asked for) apart from the reset headers (a hint): see retryWaits.
func RetryAfter(h http.Header, now time.Time) time.Duration {
	explicit, hint := retryWaits(h, now)
	return max(explicit, hint)
}

// retryWaits returns the wait a response asks for (Retry-After,
// retry-after-ms) and the one its x-ratelimit-reset-* headers hint at, each
// capped at an hour.
func retryWaits(h http.Header, now time.Time) (explicit, hint time.Duration) {
	if h == nil {
		return 0, 0
	}
	const ceiling = time.Hour
	// seconds converts without overflowing time.Duration on absurd values.
	seconds := func(f float64) time.Duration {
		if f > ceiling.Seconds() {
			return ceiling
		}
		return time.Duration(f * float64(time.Second))
	}
	if v := h.Get("Retry-After-Ms"); v != "" {
		if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && f > 0 {
			explicit = max(explicit, seconds(f/1000))
		}
	}
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			if f > 0 {
				explicit = max(explicit, seconds(f))
			}
		} else if t, err := http.ParseTime(v); err == nil {
			explicit = max(explicit, t.Sub(now))
		}
	}
	for _, kind := range []string{"Requests", "Tokens"} {
		if rem := strings.TrimSpace(h.Get("X-Ratelimit-Remaining-" + kind)); rem != "" && rem != "0" {
			continue
		}
		if v := strings.TrimSpace(h.Get("X-Ratelimit-Reset-" + kind)); v != "" {
			if d, err := time.ParseDuration(v); err == nil {
				hint = max(hint, d)
			} else if f, err := strconv.ParseFloat(v, 64); err == nil && f > 0 {
				hint = max(hint, seconds(f))
			}
		}
	}
	return min(max(explicit, 0), ceiling), min(max(hint, 0), ceiling)
}
