package testredis

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// SentinelOptions configures StartSentinel.
type SentinelOptions struct {
	// MasterName is the name the sentinel monitors the master under.
	// Default "mymaster".
	MasterName string
	// MasterUsername and MasterPassword are how the sentinel authenticates
	// to the master (sentinel auth-user / auth-pass), when it needs to.
	MasterUsername, MasterPassword string
	// Password protects the sentinel itself (requirepass).
	Password string
}

// Sentinel is a running redis-sentinel monitoring one master.
type Sentinel struct {
	Addr       string
	MasterName string
	cmd        *exec.Cmd
	exited     chan error
}

// SentinelBinary returns the command that runs a sentinel: redis-sentinel
// (Debian's redis-sentinel package) when installed, else redis-server with
// --sentinel, the same program. It returns nil when neither exists.
func SentinelBinary() []string {
	if p, err := exec.LookPath("redis-sentinel"); err == nil {
		return []string{p}
	}
	if p := Binary(); p != "" {
		return []string{p, "--sentinel"}
	}
	return nil
}

// StartSentinel runs a sentinel (quorum 1) monitoring master and returns it
// once it answers and knows the master's address. It is stopped by
// t.Cleanup.
func StartSentinel(t testing.TB, master *Server, opt SentinelOptions) *Sentinel {
	t.Helper()
	bin := SentinelBinary()
	if bin == nil {
		t.Fatal("redis-sentinel not found: install it (Debian: apt-get install redis-sentinel, or redis-server, which runs as a sentinel with --sentinel)")
	}
	if opt.MasterName == "" {
		opt.MasterName = "mymaster"
	}
	dir := t.TempDir()
	return onFreePort(t, "redis-sentinel", func(port int) (*Sentinel, error) {
		return startSentinel(bin, dir, port, master, opt)
	}, (*Sentinel).stop)
}

func startSentinel(bin []string, dir string, port int, master *Server, opt SentinelOptions) (*Sentinel, error) {
	host, masterPort, err := net.SplitHostPort(master.Addr)
	if err != nil {
		return nil, err
	}
	logfile := filepath.Join(dir, fmt.Sprintf("sentinel-%d.log", port))
	conf := []string{
		"port " + strconv.Itoa(port),
		"bind 127.0.0.1",
		"daemonize no",
		"dir " + dir,
		"logfile " + logfile,
		fmt.Sprintf("sentinel monitor %s %s %s 1", opt.MasterName, host, masterPort),
		// No failover during a test unless the test stops the master.
		fmt.Sprintf("sentinel down-after-milliseconds %s 60000", opt.MasterName),
	}
	if opt.MasterUsername != "" {
		conf = append(conf, fmt.Sprintf("sentinel auth-user %s %s", opt.MasterName, opt.MasterUsername))
	}
	if opt.MasterPassword != "" {
		conf = append(conf, fmt.Sprintf("sentinel auth-pass %s %s", opt.MasterName, opt.MasterPassword))
	}
	if opt.Password != "" {
		conf = append(conf, "requirepass "+opt.Password)
	}
	// A sentinel rewrites its configuration file: it must be writable.
	path := filepath.Join(dir, fmt.Sprintf("sentinel-%d.conf", port))
	if err := os.WriteFile(path, []byte(strings.Join(conf, "\n")+"\n"), 0o600); err != nil {
		return nil, err
	}
	args := append([]string{path}, bin[1:]...)
	cmd := exec.Command(bin[0], args...)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &Sentinel{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), MasterName: opt.MasterName, cmd: cmd}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	s.exited = exited
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return nil, fmt.Errorf("redis-sentinel on port %d exited: %v: %s", port, err, tail(logfile))
		default:
		}
		c := redis.NewSentinelClient(&redis.Options{Addr: s.Addr, Password: opt.Password, MaxRetries: -1})
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		addr, err := c.GetMasterAddrByName(ctx, opt.MasterName).Result()
		cancel()
		_ = c.Close()
		if err == nil && len(addr) == 2 && net.JoinHostPort(addr[0], addr[1]) == master.Addr {
			return s, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.stop()
	return nil, fmt.Errorf("redis-sentinel on port %d did not report master %s within 10s: %s", port, master.Addr, tail(logfile))
}

func (s *Sentinel) stop() {
	_ = s.cmd.Process.Kill()
	<-s.exited
}
