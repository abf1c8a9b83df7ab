package testredis

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cluster is a running Redis Cluster of masters without replicas.
type Cluster struct {
	// Addrs are the nodes' addresses.
	Addrs []string
}

// StartCluster runs a Redis Cluster of n masters (at least 3, as
// `redis-cli --cluster create` requires), each with password when it is not
// empty, and returns it once every slot is served. The nodes are stopped by
// t.Cleanup.
func StartCluster(t testing.TB, n int, password string) *Cluster {
	t.Helper()
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Fatal("redis-cli not found: install it (Debian: apt-get install redis-tools, which redis-server pulls in)")
	}
	c := &Cluster{}
	for range n {
		conf := []string{"--cluster-enabled", "yes", "--cluster-node-timeout", "5000", "--save", "", "--appendonly", "no"}
		if password != "" {
			conf = append(conf, "--requirepass", password, "--masterauth", password)
		}
		// cluster-config-file is relative to --dir, a directory per node.
		s := StartConfig(t, "", conf...)
		c.Addrs = append(c.Addrs, s.Addr)
	}
	args := []string{"--cluster", "create"}
	args = append(args, c.Addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	cmd := exec.Command(cli, args...)
	if password != "" {
		cmd.Env = append(cmd.Environ(), "REDISCLI_AUTH="+password)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, addr := range c.Addrs {
		for {
			info, err := clusterInfo(addr, password)
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("cluster node %s not ready within 20s: %v %s", addr, err, info)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return c
}

func clusterInfo(addr, password string) (string, error) {
	c := redis.NewClient(&redis.Options{Addr: addr, Password: password, MaxRetries: -1})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	info, err := c.ClusterInfo(ctx).Result()
	if err != nil {
		return "", fmt.Errorf("CLUSTER INFO: %w", err)
	}
	return info, nil
}
