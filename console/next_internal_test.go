package console

import "testing"

// After login the console only redirects to one of its own paths: never to
// another host, whatever a browser would make of the value.
func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"/":                     "/",
		"/api/jobs?x=1":         "/api/jobs?x=1",
		"/asynqmon/queues":      "/asynqmon/queues",
		"":                      "/",
		"//evil.example":        "/",
		"/\\evil.example":       "/",
		"/\t/evil.example":      "/",
		"/\n/evil.example":      "/",
		"https://evil.example/": "/",
		"evil.example":          "/",
		"/login":                "/",
		"/%2F/evil.example":     "/%2F/evil.example",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}
