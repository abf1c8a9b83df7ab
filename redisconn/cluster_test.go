package redisconn_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llmfleet/llmfleet/internal/testredis"
	"github.com/llmfleet/llmfleet/redisconn"
)

// A redis-cluster:// URL with two of three seed nodes reaches the whole
// cluster, and the checkpoint's and asynq's scripts run there: each touches
// one hash tag, so one slot.
func TestClusterConnects(t *testing.T) {
	t.Parallel()
	const password = "cluster-" + secret
	c := testredis.StartCluster(t, 3, password)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	url := "redis-cluster://:" + password + "@" + c.Addrs[0] + "," + c.Addrs[1]
	rdb, err := redisconn.Open(url)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	if _, ok := rdb.(*redis.ClusterClient); !ok {
		t.Fatalf("client %T, want a cluster client", rdb)
	}
	if err := redisconn.Ping(ctx, rdb, url); err != nil {
		t.Fatal(err)
	}
	check := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs[2:], Password: password})
	defer check.Close()
	exerciseFleet(t, ctx, rdb, check)

	// The job's keys and the queue's keys each sit in one slot, and the
	// cluster spreads them: they need not share a node.
	for _, keys := range [][]string{
		{"llmfleet:{fleet-paths}:job", "llmfleet:{fleet-paths}:status", "llmfleet:{fleet-paths}:order"},
		{"asynq:{paths}:pending", "asynq:{paths}:active", "asynq:{paths}:t:x"},
	} {
		slot, err := check.ClusterKeySlot(ctx, keys[0]).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys[1:] {
			if s, err := check.ClusterKeySlot(ctx, k).Result(); err != nil || s != slot {
				t.Errorf("%s is in slot %d, %s in %d", keys[0], slot, k, s)
			}
		}
	}
}
