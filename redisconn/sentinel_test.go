package redisconn_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/llmfleet/llmfleet/checkpoint"
	"github.com/llmfleet/llmfleet/internal/testredis"
	"github.com/llmfleet/llmfleet/redisconn"
)

// sentinelBundle is a real redis-server with an ACL user and a password,
// watched by a real redis-sentinel that has a password of its own.
type sentinelBundle struct {
	master   *testredis.Server
	sentinel *testredis.Sentinel
	admin    *redis.Client // straight to the master, as the default user
}

const (
	appUser          = "app"
	appPassword      = "app-" + secret
	masterPassword   = "master-" + secret
	sentinelPassword = "sentinel-" + secret
)

func setupSentinel(t *testing.T) *sentinelBundle {
	t.Helper()
	ctx := context.Background()
	master := testredis.Start(t)
	c := master.Client(t)
	if err := c.Do(ctx, "ACL", "SETUSER", appUser, "on", ">"+appPassword, "~*", "&*", "+@all").Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.ConfigSet(ctx, "requirepass", masterPassword).Err(); err != nil {
		t.Fatal(err)
	}
	admin := redis.NewClient(&redis.Options{Addr: master.Addr, Password: masterPassword})
	t.Cleanup(func() { _ = admin.Close() })
	s := testredis.StartSentinel(t, master, testredis.SentinelOptions{
		MasterName: "llmfleet", MasterPassword: masterPassword, Password: sentinelPassword,
	})
	return &sentinelBundle{master: master, sentinel: s, admin: admin}
}

func (b *sentinelBundle) url(user, password, sentinelPass string, sentinels ...string) string {
	u := "redis-sentinel://" + user + ":" + password + "@" + strings.Join(sentinels, ",") + "/" + b.sentinel.MasterName + "/0"
	if sentinelPass != "" {
		u += "?sentinel_password=" + sentinelPass
	}
	return u
}

// The producer's and the worker's paths through a redis-sentinel:// URL: the
// client finds the master through the sentinels (skipping one that is down),
// authenticates as the ACL user, and the checkpoint and asynq (client,
// server, inspector) work over it.
func TestSentinelConnects(t *testing.T) {
	t.Parallel()
	b := setupSentinel(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// 127.0.0.1:1 refuses connections: the client moves on to the next
	// sentinel.
	url := b.url(appUser, appPassword, sentinelPassword, "127.0.0.1:1", b.sentinel.Addr)
	c, err := redisconn.Parse(url)
	if err != nil {
		t.Fatal(err)
	}
	if c.Mode != redisconn.Sentinel {
		t.Fatalf("mode %s", c.Mode)
	}
	rdb, err := redisconn.Open(url)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	if err := redisconn.Ping(ctx, rdb, url); err != nil {
		t.Fatal(err)
	}
	who, err := rdb.Do(ctx, "ACL", "WHOAMI").Text()
	if err != nil || who != appUser {
		t.Fatalf("ACL WHOAMI = %q, %v; want %q (the URL's user, which asynq's own parser drops)", who, err, appUser)
	}

	exerciseFleet(t, ctx, rdb, b.admin)
}

// exerciseFleet runs what the producer and the worker do with their client
// rdb: the checkpoint (one Lua script over a job's {job} keys) and asynq
// (client, server, inspector, whose scripts touch one queue's {queue} keys).
// check is a separate client to the same data, to see the writes landed.
func exerciseFleet(t *testing.T, ctx context.Context, rdb, check redis.UniversalClient) {
	t.Helper()
	store := checkpoint.New(rdb)
	pol := checkpoint.Policy{Queue: "default", MaxAttempts: 5, BackoffMin: time.Second, BackoffMax: time.Minute, Timeout: time.Minute, Retention: time.Hour}
	if _, created, err := store.Open(ctx, "fleet-paths", pol); err != nil || !created {
		t.Fatalf("checkpoint Open: created %v, %v", created, err)
	}
	job, err := checkpoint.New(check).Job(ctx, "fleet-paths")
	if err != nil {
		t.Fatalf("the job is not in Redis: %v", err)
	}
	if job.Policy.Queue != "default" || job.Policy.MaxAttempts != 5 {
		t.Errorf("policy read back: %+v", job.Policy)
	}

	// asynq, as the producer uses it: the task lands in the queue's pending
	// list.
	client := asynq.NewClientFromRedisClient(rdb)
	info, err := client.EnqueueContext(ctx, asynq.NewTask("test:ping", []byte("hello")), asynq.Queue("paths"))
	if err != nil {
		t.Fatal(err)
	}
	if n, err := check.LLen(ctx, "asynq:{paths}:pending").Result(); err != nil || n != 1 {
		t.Fatalf("pending list has %d tasks (%v), want 1", n, err)
	}

	// asynq, as the worker uses it: a server on the client runs the task.
	ran := make(chan string, 1)
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency: 1, Queues: map[string]int{"paths": 1}, LogLevel: asynq.FatalLevel,
		ShutdownTimeout: time.Second,
	})
	mux := asynq.NewServeMux()
	mux.HandleFunc("test:ping", func(_ context.Context, task *asynq.Task) error {
		ran <- string(task.Payload())
		return nil
	})
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	select {
	case got := <-ran:
		if got != "hello" {
			t.Errorf("handler got %q", got)
		}
	case <-ctx.Done():
		t.Fatal("the asynq server never ran the task")
	}
	insp := asynq.NewInspectorFromRedisClient(rdb)
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := insp.GetTaskInfo("paths", info.ID)
		if errors.Is(err, asynq.ErrTaskNotFound) {
			break // done and deleted (no retention)
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s still known to asynq after it ran: %v", info.ID, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Wrong credentials fail at Ping, with an error that names the server but
// shows no password.
func TestSentinelBadCredentials(t *testing.T) {
	t.Parallel()
	b := setupSentinel(t)
	ctx := context.Background()
	for name, url := range map[string]string{
		"wrong sentinel password": b.url(appUser, appPassword, "wrong-"+secret, b.sentinel.Addr),
		"no sentinel password":    b.url(appUser, appPassword, "", b.sentinel.Addr),
		"wrong master password":   b.url(appUser, "wrong-"+secret, sentinelPassword, b.sentinel.Addr),
		"unknown master":          strings.Replace(b.url(appUser, appPassword, sentinelPassword, b.sentinel.Addr), "/llmfleet/", "/nosuchmaster/", 1),
	} {
		t.Run(name, func(t *testing.T) {
			rdb, err := redisconn.Open(url)
			if err != nil {
				t.Fatal(err)
			}
			defer rdb.Close()
			err = redisconn.Ping(ctx, rdb, url)
			if err == nil {
				t.Fatal("Ping succeeded")
			}
			msg := err.Error()
			t.Log(msg)
			if !strings.Contains(msg, "unreachable") || !strings.Contains(msg, b.sentinel.Addr) {
				t.Errorf("error does not name the sentinel: %s", msg)
			}
			if strings.Contains(msg, secret) {
				t.Errorf("error shows a password: %s", msg)
			}
		})
	}
}
