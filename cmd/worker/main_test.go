package main

import (
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestParseRejectsBadConfigurationNamingIt(t *testing.T) {
	cases := []struct {
		args []string
		env  func(string) string
		want string
	}{
		{[]string{"--concurrency", "0"}, env(), "--concurrency"},
		{[]string{"--queues", "default=zero"}, env(), "--queues"},
		{[]string{"--queues", "=3"}, env(), "--queues"},
		{[]string{"--check-interval", "500ms"}, env(), "--check-interval"},
		{[]string{"--rpm", "-5"}, env(), "--rpm"},
		{nil, env("LLMFLEET_RPM", "lots"), "LLMFLEET_RPM"},
		{nil, env("LLMFLEET_TPM", "-1"), "LLMFLEET_TPM"},
		{[]string{"--breaker-failure-ratio", "2"}, env(), "--breaker-failure-ratio"},
		{[]string{"--log-level", "loud"}, env(), "--log-level"},
		{[]string{"extra"}, env(), "unexpected argument"},
		{[]string{"--no-such-flag"}, env(), "no-such-flag"},
		{[]string{"--alert-webhook", "ftp://x/tok"}, env(), "--alert-webhook #1"},
		{nil, env("LLMFLEET_ALERT_WEBHOOK", "http://ok/,nope"), "--alert-webhook #2"},
		{[]string{"--alert-format", "xml"}, env(), "--alert-format"},
		{[]string{"--alert-error-rate", "0"}, env(), "--alert-error-rate"},
		{[]string{"--alert-min-items", "0"}, env(), "--alert-min-items"},
		{[]string{"--alert-window", "0s"}, env(), "--alert-window"},
		{[]string{"--alert-cooldown", "-1s"}, env(), "--alert-cooldown"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " ")+c.want, func(t *testing.T) {
			_, err := parse(c.args, c.env, io.Discard)
			var ue usageError
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("parse(%v) = %v, want an error naming %s", c.args, err, c.want)
			}
			if !asUsage(err, &ue) {
				t.Errorf("error %v is not a usage error (exit 2)", err)
			}
		})
	}
}

func asUsage(err error, ue *usageError) bool {
	u, ok := err.(usageError)
	if ok {
		*ue = u
	}
	return ok
}

func TestParseReadsTheEnvironmentAndFlagsWin(t *testing.T) {
	c, err := parse([]string{"--rpm", "100"}, env("LLMFLEET_RPM", "50", "LLMFLEET_TPM", "9000",
		"OPENAI_API_KEY", "sk-secret", "OPENAI_BASE_URL", "http://llm:8000/v1", "REDIS_URL", "redis://r:6379/1"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.worker.RPM != 100 || c.worker.TPM != 9000 {
		t.Errorf("rpm %d tpm %d, want the flag's 100 and the environment's 9000", c.worker.RPM, c.worker.TPM)
	}
	if c.worker.Provider.APIKey != "sk-secret" || c.worker.Provider.BaseURL != "http://llm:8000/v1" || c.redisURL != "redis://r:6379/1" {
		t.Errorf("config %+v does not carry the environment", c)
	}
}

func TestRedactURLDropsSecrets(t *testing.T) {
	for in, want := range map[string]string{
		"https://user:sk-abc@gw.example/v1?api-key=sk-abc": "https://gw.example/v1?redacted",
		"http://127.0.0.1:8089/v1":                         "http://127.0.0.1:8089/v1",
	} {
		if got := redactURL(in); got != want || strings.Contains(got, "sk-abc") {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseAlertFlags(t *testing.T) {
	t.Run("defaults: off", func(t *testing.T) {
		c, err := parse(nil, env(), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		a := c.worker.Alerts
		if a.Enabled() || a.Format != "json" || a.ErrorRate != 0.05 || a.MinItems != 20 || a.Window != 5*time.Minute || a.Cooldown != 15*time.Minute {
			t.Errorf("alerts %+v, want off with the documented defaults", a)
		}
	})
	t.Run("environment", func(t *testing.T) {
		c, err := parse(nil, env("LLMFLEET_ALERT_WEBHOOK", "https://a.example/1, https://b.example/2", "LLMFLEET_ALERT_SECRET", "s3"), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if a := c.worker.Alerts; !slices.Equal(a.Webhooks, []string{"https://a.example/1", "https://b.example/2"}) || a.Secret != "s3" {
			t.Errorf("alerts %+v, want both webhooks and the secret from the environment", a)
		}
	})
	t.Run("repeated flags win over the environment", func(t *testing.T) {
		c, err := parse([]string{"--alert-webhook", "https://c.example/3", "--alert-webhook", "https://d.example/4",
			"--alert-format", "slack", "--alert-secret", "flag", "--alert-error-rate", "0.1", "--alert-min-items", "5",
			"--alert-window", "1m", "--alert-cooldown", "2m"}, env("LLMFLEET_ALERT_WEBHOOK", "https://a.example/1", "LLMFLEET_ALERT_SECRET", "env"), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		a := c.worker.Alerts
		if !slices.Equal(a.Webhooks, []string{"https://c.example/3", "https://d.example/4"}) || a.Secret != "flag" || a.Format != "slack" ||
			a.ErrorRate != 0.1 || a.MinItems != 5 || a.Window != time.Minute || a.Cooldown != 2*time.Minute {
			t.Errorf("alerts %+v", a)
		}
	})
	t.Run("help shows neither webhook nor secret", func(t *testing.T) {
		var out strings.Builder
		_, err := parse([]string{"--help"}, env("LLMFLEET_ALERT_WEBHOOK", "https://a.example/tok-1", "LLMFLEET_ALERT_SECRET", "sec-1"), &out)
		if err == nil {
			t.Fatal("--help returned no error")
		}
		if strings.Contains(out.String(), "tok-1") || strings.Contains(out.String(), "sec-1") {
			t.Errorf("--help prints a secret:\n%s", out.String())
		}
	})
}
