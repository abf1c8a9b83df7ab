package deploy_test

import (
	"bufio"
	"context"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/redis/go-redis/v9"

	"github.com/llmfleet/llmfleet/internal/testredis"
	"github.com/llmfleet/llmfleet/redisconn"
)

// testPassword stands for the user's REDIS_PASSWORD, testToken for their
// LLMFLEET_CONSOLE_TOKEN.
const (
	testPassword = "compose-test-password"
	testToken    = "compose-test-console-token"
)

// baseEnv is the least environment the compose file loads with.
func baseEnv() map[string]string {
	return map[string]string{"REDIS_PASSWORD": testPassword, "LLMFLEET_CONSOLE_TOKEN": testToken}
}

// loadCompose loads docker-compose.yml as `docker compose` would, with env
// as the whole environment (no .env file, no OS environment) and the given
// profiles active.
func loadCompose(t *testing.T, env map[string]string, profiles ...string) (*types.Project, error) {
	t.Helper()
	root := repoRoot(t)
	var list []string
	for k, v := range env {
		list = append(list, k+"="+v)
	}
	opts, err := cli.NewProjectOptions(
		[]string{filepath.Join(root, "docker-compose.yml")},
		cli.WithWorkingDirectory(root),
		cli.WithName("llmfleet-test"),
		cli.WithEnv(list),
		cli.WithProfiles(profiles),
		cli.WithResolvedPaths(true),
	)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return opts.LoadProject(ctx)
}

func mustLoad(t *testing.T, env map[string]string, profiles ...string) *types.Project {
	t.Helper()
	if env == nil {
		env = baseEnv()
	}
	p, err := loadCompose(t, env, profiles...)
	if err != nil {
		t.Fatalf("load docker-compose.yml (profiles %q): %v", profiles, err)
	}
	return p
}

func service(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, ok := p.Services[name]
	if !ok {
		t.Fatalf("no enabled service %q (enabled: %q)", name, p.ServiceNames())
	}
	return s
}

// flagValue returns the value of --name in a command line, in either the
// "--name value" or the "--name=value" form.
func flagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
		if a == "--"+name && i+1 < len(args) {
			return args[i+1], true
		}
	}
	return "", false
}

// portOf returns the port of a listen address such as ":9090".
func portOf(t *testing.T, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("listen address %q: %v", addr, err)
	}
	return port
}

// Without REDIS_PASSWORD there is no project: no Redis runs with a default
// or empty password.
func TestComposeNeedsRedisPassword(t *testing.T) {
	t.Parallel()
	for name, env := range map[string]map[string]string{
		"unset": {"LLMFLEET_CONSOLE_TOKEN": testToken},
		"empty": {"REDIS_PASSWORD": "", "LLMFLEET_CONSOLE_TOKEN": testToken},
	} {
		_, err := loadCompose(t, env)
		if err == nil {
			t.Errorf("%s REDIS_PASSWORD: the compose file loaded", name)
			continue
		}
		if !strings.Contains(err.Error(), "set REDIS_PASSWORD in .env") {
			t.Errorf("%s REDIS_PASSWORD: error %q does not say to set it", name, err)
		}
	}
}

// Each profile resolves and brings in its own service only.
func TestComposeProfiles(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		profiles []string
		want     []string
	}{
		{nil, []string{"console", "redis", "worker"}},
		{[]string{"demo"}, []string{"console", "mockllm", "redis", "worker"}},
		{[]string{"tools"}, []string{"console", "producer", "redis", "worker"}},
		{[]string{"demo", "tools"}, []string{"console", "mockllm", "producer", "redis", "worker"}},
	} {
		p := mustLoad(t, nil, tc.profiles...)
		got := p.ServiceNames()
		sort.Strings(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("profiles %q: services %q, want %q", tc.profiles, got, tc.want)
		}
	}
}

func TestComposeRedis(t *testing.T) {
	t.Parallel()
	p := mustLoad(t, nil)
	r := service(t, p, "redis")
	if !strings.HasPrefix(r.Image, "redis:7") {
		t.Errorf("redis image %q, want redis:7", r.Image)
	}
	if len(r.Ports) > 0 {
		t.Errorf("redis publishes %+v: it must be reachable from the compose network only", r.Ports)
	}
	if r.HealthCheck == nil || r.HealthCheck.Disable || len(r.HealthCheck.Test) == 0 {
		t.Fatalf("redis has no healthcheck: %+v", r.HealthCheck)
	}
	if hc := strings.Join(r.HealthCheck.Test, " "); !strings.Contains(hc, "redis-cli") || strings.Contains(hc, testPassword) {
		t.Errorf("redis healthcheck %q: want redis-cli, authenticated by REDISCLI_AUTH rather than a password on its command line", hc)
	}
	if v := r.Environment["REDISCLI_AUTH"]; v == nil || *v != testPassword {
		t.Errorf("REDISCLI_AUTH = %v, want the password (the healthcheck's credentials)", v)
	}
	if pw, _ := flagValue(r.Command, "requirepass"); pw != testPassword {
		t.Errorf("redis command %q does not set --requirepass from REDIS_PASSWORD", r.Command)
	}
	var data bool
	for _, v := range r.Volumes {
		if v.Target == "/data" && v.Type == types.VolumeTypeVolume {
			if _, ok := p.Volumes[v.Source]; !ok {
				t.Errorf("volume %q is not declared", v.Source)
			}
			data = true
		}
	}
	if !data {
		t.Errorf("redis /data is not a named volume: %+v", r.Volumes)
	}
}

// The compose redis command line, run by a real redis-server with
// deploy/redis.conf: the file parses, and the settings the fleet relies on
// are in force.
func TestComposeRedisConfigRuns(t *testing.T) {
	t.Parallel()
	p := mustLoad(t, nil)
	r := service(t, p, "redis")
	if len(r.Command) < 2 || r.Command[0] != "redis-server" {
		t.Fatalf("redis command %q: want redis-server CONFIG-FILE ...", r.Command)
	}
	conf := ""
	for _, v := range r.Volumes {
		if v.Target == r.Command[1] {
			conf = v.Source
			if !v.ReadOnly {
				t.Errorf("%s is mounted read-write", v.Target)
			}
		}
	}
	if conf == "" {
		t.Fatalf("the configuration file %s is not mounted", r.Command[1])
	}
	if want := filepath.Join(repoRoot(t), "deploy", "redis.conf"); conf != want {
		t.Errorf("redis.conf comes from %s, want %s", conf, want)
	}
	srv := testredis.StartConfig(t, conf, r.Command[2:]...)
	ctx := context.Background()

	anon := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer anon.Close()
	if err := anon.Ping(ctx).Err(); err == nil || !strings.HasPrefix(err.Error(), "NOAUTH") {
		t.Errorf("PING without the password: %v, want NOAUTH", err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, Password: testPassword})
	defer rdb.Close()
	for param, want := range map[string]string{
		"appendonly":       "yes",
		"appendfsync":      "everysec",
		"maxmemory-policy": "noeviction",
		"maxmemory":        "536870912", // REDIS_MAXMEMORY's default, 512mb
	} {
		got, err := rdb.ConfigGet(ctx, param).Result()
		if err != nil {
			t.Fatalf("CONFIG GET %s: %v", param, err)
		}
		if got[param] != want {
			t.Errorf("%s = %q, want %q", param, got[param], want)
		}
	}
}

func TestComposeWorker(t *testing.T) {
	t.Parallel()
	p := mustLoad(t, map[string]string{
		"REDIS_PASSWORD": testPassword, "LLMFLEET_CONSOLE_TOKEN": testToken, "OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": "http://mockllm:8089/v1",
		"LLMFLEET_RPM": "600", "LLMFLEET_TPM": "90000",
	})
	w := service(t, p, "worker")

	// Scalable: --scale worker=5 needs no fixed name and no host port.
	if w.ContainerName != "" {
		t.Errorf("worker has container_name %q: it could not be scaled", w.ContainerName)
	}
	if len(w.Ports) > 0 {
		t.Errorf("worker publishes %+v: a second replica could not bind it", w.Ports)
	}
	if w.Command[0] != "worker" || !slices.Contains(imageBinaries(t), w.Command[0]) {
		t.Errorf("worker command %q does not start the image's worker binary (%q)", w.Command, imageBinaries(t))
	}
	if w.Build == nil || w.Build.Dockerfile != "deploy/Dockerfile" {
		t.Errorf("worker is not built from deploy/Dockerfile: %+v", w.Build)
	}

	if dep, ok := w.DependsOn["redis"]; !ok || dep.Condition != types.ServiceConditionHealthy {
		t.Errorf("worker depends_on redis = %+v, want condition service_healthy", w.DependsOn)
	}

	// The grace period covers the drain.
	st, ok := flagValue(w.Command, "shutdown-timeout")
	if !ok {
		t.Fatalf("worker command %q sets no --shutdown-timeout", w.Command)
	}
	drain, err := time.ParseDuration(st)
	if err != nil {
		t.Fatal(err)
	}
	if w.StopGracePeriod == nil || time.Duration(*w.StopGracePeriod) <= drain {
		t.Errorf("stop_grace_period %v is not longer than --shutdown-timeout %s: Docker would SIGKILL workers mid-drain", w.StopGracePeriod, drain)
	}

	// The healthcheck probes the worker's own listener.
	metrics, ok := flagValue(w.Command, "metrics-addr")
	if !ok {
		t.Fatalf("worker command %q sets no --metrics-addr", w.Command)
	}
	if w.HealthCheck == nil || w.HealthCheck.Disable || len(w.HealthCheck.Test) < 3 {
		t.Fatalf("worker healthcheck %+v", w.HealthCheck)
	}
	hc := w.HealthCheck.Test
	if hc[0] != "CMD" || hc[1] != "healthcheck" || !slices.Contains(imageBinaries(t), hc[1]) {
		t.Errorf("worker healthcheck %q: want [CMD healthcheck URL], the image's probe (distroless has no curl)", hc)
	}
	u, err := url.Parse(hc[len(hc)-1])
	if err != nil || u.Port() != portOf(t, metrics) || u.Path != "/healthz" {
		t.Errorf("worker healthcheck probes %q, want /healthz on --metrics-addr %s", hc[len(hc)-1], metrics)
	}

	// Environment: Redis with the password, the provider, the limits.
	env := func(k string) string {
		v := w.Environment[k]
		if v == nil {
			t.Errorf("worker environment has no %s", k)
			return ""
		}
		return *v
	}
	c, err := redisconn.Parse(env("REDIS_URL"))
	if err != nil {
		t.Fatalf("worker REDIS_URL: %v", err)
	}
	if c.Mode != redisconn.Single || c.Single.Addr != "redis:6379" || c.Single.Password != testPassword {
		t.Errorf("worker REDIS_URL reaches %s (%s) with password %v, want redis:6379 with REDIS_PASSWORD", c.Single.Addr, c.Mode, c.Single.Password == testPassword)
	}
	for k, want := range map[string]string{"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": "http://mockllm:8089/v1", "LLMFLEET_RPM": "600", "LLMFLEET_TPM": "90000"} {
		if got := env(k); got != want {
			t.Errorf("worker %s = %q, want %q", k, got, want)
		}
	}

	if w.Deploy == nil || w.Deploy.Resources.Limits == nil || w.Deploy.Resources.Limits.MemoryBytes == 0 || w.Deploy.Resources.Limits.NanoCPUs == 0 {
		t.Errorf("worker has no CPU and memory limits: %+v", w.Deploy)
	}
}

// The console replaces the asynqmon image: our producer binary, with a
// token from .env, published on loopback only.
func TestComposeConsole(t *testing.T) {
	t.Parallel()
	for name, env := range map[string]map[string]string{
		"unset": {"REDIS_PASSWORD": testPassword},
		"empty": {"REDIS_PASSWORD": testPassword, "LLMFLEET_CONSOLE_TOKEN": ""},
	} {
		_, err := loadCompose(t, env)
		if err == nil || !strings.Contains(err.Error(), "set LLMFLEET_CONSOLE_TOKEN in .env") {
			t.Errorf("%s LLMFLEET_CONSOLE_TOKEN: %v, want a refusal that says to set it", name, err)
		}
	}
	p := mustLoad(t, nil)
	if _, ok := p.Services["asynqmon"]; ok {
		t.Error("the asynqmon image service is still there: the console serves asynqmon")
	}
	c := service(t, p, "console")
	if c.Build == nil || c.Build.Dockerfile != "deploy/Dockerfile" || c.Image != service(t, p, "worker").Image {
		t.Errorf("console is not our image built from deploy/Dockerfile: %+v %q", c.Build, c.Image)
	}
	if len(c.Command) < 2 || c.Command[0] != "producer" || c.Command[1] != "console" {
		t.Fatalf("console command %q, want producer console ...", c.Command)
	}
	addr, ok := flagValue(c.Command, "addr")
	if !ok {
		t.Fatalf("console command %q has no --addr", c.Command)
	}
	if host, _, _ := net.SplitHostPort(addr); host != "0.0.0.0" {
		t.Errorf("console listens on %s: the published port would not reach it", addr)
	}
	if v := c.Environment["LLMFLEET_CONSOLE_TOKEN"]; v == nil || *v != testToken {
		t.Errorf("console LLMFLEET_CONSOLE_TOKEN = %v, want the token from .env", v)
	}
	if slices.ContainsFunc(c.Command, func(a string) bool { return strings.Contains(a, testToken) }) {
		t.Errorf("console command %q holds the token: it would show in ps and docker inspect", c.Command)
	}
	if c.Environment["REDIS_URL"] == nil || *c.Environment["REDIS_URL"] != *service(t, p, "worker").Environment["REDIS_URL"] {
		t.Error("console and worker do not share one REDIS_URL")
	}
	if len(c.Ports) != 1 {
		t.Fatalf("console publishes %+v, want one port", c.Ports)
	}
	for _, port := range c.Ports {
		if port.HostIP != "127.0.0.1" {
			t.Errorf("console port %+v is published on %q, want 127.0.0.1 only", port, port.HostIP)
		}
		if strconv.Itoa(int(port.Target)) != portOf(t, addr) || port.Published != "8080" {
			t.Errorf("console publishes %s -> %d, want 127.0.0.1:8080 -> --addr's port %s", port.Published, port.Target, portOf(t, addr))
		}
	}
	if dep, ok := c.DependsOn["redis"]; !ok || dep.Condition != types.ServiceConditionHealthy {
		t.Errorf("console depends_on redis = %+v, want condition service_healthy", c.DependsOn)
	}
	if !c.ReadOnly || !slices.Contains(c.CapDrop, "ALL") {
		t.Errorf("console read_only %v, cap_drop %q: want a read-only root and no capabilities", c.ReadOnly, c.CapDrop)
	}
	if ro, _ := flagValue(c.Command, "read-only"); ro != "false" {
		t.Errorf("console --read-only=%q by default, want false (it has a token)", ro)
	}
	env := baseEnv()
	env["LLMFLEET_CONSOLE_READ_ONLY"], env["LLMFLEET_CONSOLE_PORT"] = "true", "9443"
	c = service(t, mustLoad(t, env), "console")
	if ro, _ := flagValue(c.Command, "read-only"); ro != "true" {
		t.Errorf("LLMFLEET_CONSOLE_READ_ONLY=true gives --read-only=%q, want true", ro)
	}
	if c.Ports[0].Published != "9443" || c.Ports[0].HostIP != "127.0.0.1" {
		t.Errorf("LLMFLEET_CONSOLE_PORT=9443 publishes %+v, want 127.0.0.1:9443", c.Ports[0])
	}
}

func TestComposeDemoAndTools(t *testing.T) {
	t.Parallel()
	p := mustLoad(t, nil, "demo", "tools")

	m := service(t, p, "mockllm")
	if !slices.Equal(m.Profiles, []string{"demo"}) {
		t.Errorf("mockllm profiles %q, want [demo]", m.Profiles)
	}
	addr, ok := flagValue(m.Command, "addr")
	if !ok || m.Command[0] != "mockllm" {
		t.Fatalf("mockllm command %q: want mockllm --addr ...", m.Command)
	}
	if host, _, _ := net.SplitHostPort(addr); host != "0.0.0.0" {
		t.Errorf("mockllm listens on %s: the workers in other containers cannot reach it", addr)
	}
	if _, ok := flagValue(m.Command, "faults"); !ok {
		t.Errorf("mockllm command %q has no --faults mix", m.Command)
	}
	if len(m.Ports) > 0 {
		t.Errorf("mockllm publishes %+v", m.Ports)
	}
	// .env.example's demo provider URL reaches it.
	ex := envExample(t)
	u, err := url.Parse(ex["OPENAI_BASE_URL"])
	if err != nil || u.Hostname() != "mockllm" || u.Port() != portOf(t, addr) || u.Path != "/v1" {
		t.Errorf(".env.example OPENAI_BASE_URL=%q does not reach mockllm on %s", ex["OPENAI_BASE_URL"], addr)
	}

	pr := service(t, p, "producer")
	if !slices.Equal(pr.Profiles, []string{"tools"}) {
		t.Errorf("producer profiles %q, want [tools]", pr.Profiles)
	}
	// `docker compose run --rm producer run --job J /data/items.jsonl`
	// replaces the command and keeps the entrypoint.
	if !slices.Equal(pr.Entrypoint, []string{"producer"}) {
		t.Errorf("producer entrypoint %q, want [producer]", pr.Entrypoint)
	}
	var data bool
	for _, v := range pr.Volumes {
		if v.Target == "/data" && v.Type == types.VolumeTypeBind && v.ReadOnly &&
			v.Source == filepath.Join(repoRoot(t), "data") {
			data = true
		}
	}
	if !data {
		t.Errorf("producer does not mount ./data read-only at /data: %+v", pr.Volumes)
	}
	if pr.Environment["REDIS_URL"] == nil || *pr.Environment["REDIS_URL"] != *service(t, p, "worker").Environment["REDIS_URL"] {
		t.Error("producer and worker do not share one REDIS_URL")
	}
	if dep, ok := pr.DependsOn["redis"]; !ok || dep.Condition != types.ServiceConditionHealthy {
		t.Errorf("producer depends_on redis = %+v, want condition service_healthy", pr.DependsOn)
	}
}

// Every service running our image runs one of its binaries.
func TestComposeCommandsExistInImage(t *testing.T) {
	t.Parallel()
	p := mustLoad(t, nil, "demo", "tools")
	bins := imageBinaries(t)
	for name, s := range p.Services {
		if s.Build == nil {
			continue
		}
		argv := s.Entrypoint
		if len(argv) == 0 {
			argv = s.Command
		}
		if len(argv) == 0 || !slices.Contains(bins, argv[0]) {
			t.Errorf("service %s runs %q, not one of the image's binaries %q", name, argv, bins)
		}
	}
}

// envExample reads .env.example's KEY=VALUE lines.
func envExample(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot(t), ".env.example"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf(".env.example: %q is not KEY=VALUE", line)
		}
		out[k] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// .env.example lists every variable the compose file reads, holds no
// password, and, once REDIS_PASSWORD is filled in, loads with every
// profile.
func TestEnvExample(t *testing.T) {
	t.Parallel()
	compose, err := os.ReadFile(filepath.Join(repoRoot(t), "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	ex := envExample(t)
	for _, m := range regexp.MustCompile(`\$\{([A-Z0-9_]+)`).FindAllSubmatch(compose, -1) {
		if _, ok := ex[string(m[1])]; !ok {
			t.Errorf("docker-compose.yml reads %s, which .env.example does not document", m[1])
		}
	}
	for _, secret := range []string{"REDIS_PASSWORD", "LLMFLEET_CONSOLE_TOKEN"} {
		if ex[secret] != "" {
			t.Errorf(".env.example sets %s=%q: it must be empty so that each user sets one", secret, ex[secret])
		}
	}
	if _, err := loadCompose(t, ex, "demo", "tools"); err == nil {
		t.Error("docker-compose.yml loads with .env.example as is (empty REDIS_PASSWORD and LLMFLEET_CONSOLE_TOKEN)")
	}
	ex["REDIS_PASSWORD"], ex["LLMFLEET_CONSOLE_TOKEN"] = testPassword, testToken
	mustLoad(t, ex, "demo", "tools")
}
