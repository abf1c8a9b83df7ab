package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			_, _ = w.Write([]byte("ok\n"))
			return
		}
		http.Error(w, "redis unreachable", http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String() + "/healthz"
	l.Close()

	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"healthy", []string{srv.URL + "/healthz"}, 0, ""},
		{"unhealthy", []string{srv.URL + "/readyz"}, 1, "503 Service Unavailable"},
		{"nothing listening", []string{"--timeout", "2s", closed}, 1, "connection refused"},
		{"no URL", nil, 2, "usage: healthcheck"},
		{"two URLs", []string{srv.URL, srv.URL}, 2, "usage: healthcheck"},
		{"bad flag", []string{"--bogus", srv.URL}, 2, "flag provided but not defined"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var stderr bytes.Buffer
			if code := run(context.Background(), tc.args, &stderr); code != tc.code {
				t.Errorf("exit %d, want %d; stderr: %s", code, tc.code, &stderr)
			}
			if !strings.Contains(stderr.String(), tc.stderr) {
				t.Errorf("stderr %q does not say %q", &stderr, tc.stderr)
			}
		})
	}
}
