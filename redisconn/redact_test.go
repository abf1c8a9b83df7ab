package redisconn_test

import (
	"testing"

	"github.com/llmfleet/llmfleet/redisconn"
)

func TestRedact(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"redis://127.0.0.1:6379/0":                     "redis://127.0.0.1:6379/0",
		"redis://user:s3cret@h:6379/0":                 "redis://user:xxxxx@h:6379/0",
		"redis://:s3cret@h":                            "redis://:xxxxx@h",
		"redis://user@h":                               "redis://user@h",
		"rediss://u:s%2F3cret@h:6380/1?dial_timeout=3": "rediss://u:xxxxx@h:6380/1?dial_timeout=3",
		"redis-sentinel://u:s3cret@a,b:26380/m/1?sentinel_password=s3cret&sentinel_username=w": "redis-sentinel://u:xxxxx@a,b:26380/m/1?sentinel_password=xxxxx&sentinel_username=w",
		"redis-sentinel://a/m?sentinel%5Fpassword=s3cret":                                      "redis-sentinel://a/m?sentinel_password=xxxxx",
		"redis-cluster://u:s3cret@n1:7000,n2:7000":                                             "redis-cluster://u:xxxxx@n1:7000,n2:7000",
		"redis://h?password=s3cret":                                                            "redis://h?password=xxxxx",
		// Malformed: an unescaped "/" or "?" in the password, a "/" in the
		// user name. Nothing of the password shows.
		"redis://:pa/s3cret@h:6379/0":  "redis://:xxxxx@h:6379/0",
		"redis://u:pa?s3cret@h:6379/0": "redis://u:xxxxx@h:6379/0",
		"redis://us/s3cret@h":          "redis://xxxxx@h",
		"u:s3cret@h:6379":              "(not a URL)",
		"localhost:6379":               "localhost:6379",
	} {
		if got := redisconn.Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}
