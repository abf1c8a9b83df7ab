package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// cookieName is the session cookie set by the login form.
const cookieName = "llmfleet_console"

// auth checks the token. mac is the HMAC of the token under a key drawn at
// start; a bearer token and a cookie are both checked by comparing MACs.
type auth struct {
	key []byte
	mac []byte // nil: no token, everyone on loopback gets in
}

func newAuth(token string) (*auth, error) {
	a := &auth{key: make([]byte, 32)}
	if _, err := rand.Read(a.key); err != nil {
		return nil, fmt.Errorf("console: session key: %w", err)
	}
	if token != "" {
		a.mac = a.sum(token)
	}
	return a, nil
}

func (a *auth) sum(s string) []byte {
	m := hmac.New(sha256.New, a.key)
	m.Write([]byte(s))
	return m.Sum(nil)
}

func (a *auth) required() bool { return a.mac != nil }

// validToken reports whether s is the token, in constant time.
func (a *auth) validToken(s string) bool {
	return a.mac != nil && hmac.Equal(a.sum(s), a.mac)
}

// cookieValue is what the session cookie holds: the MAC, never the token.
func (a *auth) cookieValue() string { return base64.RawURLEncoding.EncodeToString(a.mac) }

// how says how a request authenticated.
type how int

const (
	anonymous how = iota // no token configured
	byBearer
	byCookie
	refused
)

func (a *auth) check(r *http.Request) how {
	if !a.required() {
		return anonymous
	}
	if h := r.Header.Get("Authorization"); h != "" {
		if tok, ok := strings.CutPrefix(h, "Bearer "); ok && a.validToken(tok) {
			return byBearer
		}
		return refused
	}
	if c, err := r.Cookie(cookieName); err == nil {
		if b, err := base64.RawURLEncoding.DecodeString(c.Value); err == nil && hmac.Equal(b, a.mac) {
			return byCookie
		}
	}
	return refused
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// sameOrigin reports whether a browser says the request comes from a page
// of this console: Origin, else Referer, names the request's Host.
func sameOrigin(r *http.Request) bool {
	src := r.Header.Get("Origin")
	if src == "" || src == "null" {
		src = r.Header.Get("Referer")
	}
	if src == "" {
		return false
	}
	u, err := url.Parse(src)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	return strings.EqualFold(u.Host, r.Host)
}

// guard applies, in order: security headers; the loopback Host check
// without a token; the login page; authentication; the same-origin check
// and read-only mode for requests that change something.
func (c *console) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "same-origin")
		hd.Set("Cache-Control", "no-store")
		if !c.auth.required() {
			host, _, err := net.SplitHostPort(r.Host)
			if err != nil {
				host = r.Host
			}
			if !loopbackHost(strings.Trim(host, "[]")) {
				http.Error(w, "this console has no token and answers on loopback names only (localhost, 127.0.0.1, [::1])", http.StatusForbidden)
				return
			}
		}
		if r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/static/") {
			// The page's own stylesheet and script, the same for
			// everyone: the login page needs them before any token.
			next.ServeHTTP(w, r)
			return
		}
		if r.URL.Path == "/login" || r.URL.Path == "/logout" {
			if !safeMethod(r.Method) && !sameOrigin(r) {
				http.Error(w, "cross-origin request refused", http.StatusForbidden)
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		h := c.auth.check(r)
		if h == refused {
			hd.Set("WWW-Authenticate", `Bearer realm="llmfleet console"`)
			if r.Method == http.MethodGet && strings.Contains(r.Header.Get("Accept"), "text/html") {
				c.pages.login(w, http.StatusUnauthorized, r.URL.RequestURI(), "")
				return
			}
			http.Error(w, "authentication required: Authorization: Bearer TOKEN, or log in at /login", http.StatusUnauthorized)
			return
		}
		if !safeMethod(r.Method) {
			if h != byBearer && !sameOrigin(r) {
				http.Error(w, "cross-origin request refused: send it from the console's own pages, or with a bearer token", http.StatusForbidden)
				return
			}
			if c.cfg.ReadOnly {
				http.Error(w, "the console is read-only (--read-only)", http.StatusForbidden)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// safeNext keeps a post-login redirect on this console: a path, never
// another host ("//evil" or "/\evil" included).
func safeNext(next string) string {
	// Browsers drop tabs and newlines from a Location and read a
	// backslash as a slash: "/\t/evil" is "//evil" to them. Only a
	// plain path of visible characters passes.
	for _, r := range next {
		if r < 0x21 || r == 0x7f || r == '\\' {
			return "/"
		}
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil ||
		!strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/login") {
		return "/"
	}
	return next
}

func (c *console) loginPage(w http.ResponseWriter, r *http.Request) {
	c.pages.login(w, http.StatusOK, r.URL.Query().Get("next"), "")
}

func (c *console) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	next := safeNext(r.PostForm.Get("next"))
	if !c.auth.required() {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	if !c.auth.validToken(r.PostForm.Get("token")) {
		c.cfg.Logger.Warn("console: login refused", "remote", r.RemoteAddr)
		c.pages.login(w, http.StatusUnauthorized, next, "That is not the console's token.")
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: c.auth.cookieValue(), Path: "/",
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (c *console) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}
