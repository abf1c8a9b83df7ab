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
	// RetryAfter is the provider's requested wait, 0 when it gave none.
	RetryAfter time.Duration
	// Err is the underlying error.
	Err error
}

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

// maxReason bounds the provider text kept in a reason.
const maxReason = 500

// Exchange is what the transport saw of one HTTP exchange.
type Exchange struct {
	Status int
	Header http.Header
	// Head is the start of the response body (for diagnosis).
	Head []byte
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
		if ex.Status == 429 || ex.Status >= 500 {
			e.RetryAfter = RetryAfter(ex.Header, time.Now())
		}
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
	case errors.As(err, &apiErr):
		e.Status = apiErr.HTTPStatusCode
		e.Code = codeString(apiErr.Code)
		e.Message = Scrub(apiErr.Message)
		e.Class = classifyStatus(e.Status, e.Code, apiErr.Type, apiErr.Message)
		// The provider's own error may echo the key: keep only the scrubbed text.
		e.Err = errors.New(e.Message)
	case errors.As(err, &reqErr):
		e.Status = reqErr.HTTPStatusCode
		e.Message = bodyReason(reqErr.Body)
		if reqErr.Err != nil && len(reqErr.Body) == 0 {
			e.Message = Scrub(reqErr.Err.Error())
		}
		if e.Status >= 200 && e.Status < 300 {
			e.Class = UpstreamInvalid
		} else {
			e.Class = classifyStatus(e.Status, "", "", string(reqErr.Body))
		}
		e.Err = errors.New(e.Message)
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

func classifyStatus(status int, code, typ, msg string) Class {
	lower := strings.ToLower(msg)
	switch {
	case status == 429:
		// Only a spent quota fails now; Gemini's ordinary rate-limit text
		// says "check quota", so the word alone is not enough.
		if code == "insufficient_quota" || typ == "insufficient_quota" ||
			strings.Contains(lower, "exceeded your current quota") || strings.Contains(lower, "billing") {
			return Quota
		}
		return RateLimited
	case status == 402:
		return Quota
	case status == 529:
		return Overloaded
	case status >= 500:
		return ServerError
	case status == 401 || status == 403:
		return Auth
	case status == 404:
		return NotFound
	case status == 400 || status == 413 || status == 422:
		switch {
		case code == "context_length_exceeded" || strings.Contains(lower, "maximum context length") || strings.Contains(lower, "context window"):
			return ContextOverflow
		case code == "content_filter" || code == "content_policy_violation" || strings.Contains(lower, "content management policy"):
			return ContentFilter
		}
		return BadRequest
	case status >= 400:
		return BadRequest
	}
	return UpstreamInvalid
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
// found, capped at an hour, 0 when there is none.
func RetryAfter(h http.Header, now time.Time) time.Duration {
	if h == nil {
		return 0
	}
	var best time.Duration
	take := func(d time.Duration) {
		if d > best {
			best = d
		}
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
			take(seconds(f / 1000))
		}
	}
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			if f > 0 {
				take(seconds(f))
			}
		} else if t, err := http.ParseTime(v); err == nil {
			take(t.Sub(now))
		}
	}
	for _, kind := range []string{"Requests", "Tokens"} {
		if rem := strings.TrimSpace(h.Get("X-Ratelimit-Remaining-" + kind)); rem != "" && rem != "0" {
			continue
		}
		if v := strings.TrimSpace(h.Get("X-Ratelimit-Reset-" + kind)); v != "" {
			if d, err := time.ParseDuration(v); err == nil {
				take(d)
			} else if f, err := strconv.ParseFloat(v, 64); err == nil && f > 0 {
				take(seconds(f))
			}
		}
	}
	if best > ceiling {
		best = ceiling
	}
	return best
}
