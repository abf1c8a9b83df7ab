// Package testredis starts throwaway redis-server processes for tests.
//
// Each Start call runs a fresh redis-server on a free loopback port in a
// temporary directory, with persistence off, and stops it when the test
// ends. A server per test keeps asynq's global keys (servers, queues) and
// our checkpoints from leaking between tests that run in parallel.
//
// When redis-server is not installed the test fails with a message that says
// how to get it (`make test` installs Debian's package): a test that needs
// Redis never passes silently without it.
//
// A server started with persistence on (StartConfig with --appendonly yes)
// can be crashed with Kill and started again with Restart on the same port
// and directory, so it loads what it had persisted: clients configured with
// its address reconnect to the same server, as they would after a crash and
// a supervisor's restart.
package testredis

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is a running redis-server.
type Server struct {
	Addr string
	URL  string
	// cmd is nil between Kill and Restart.
	cmd    *exec.Cmd
	exited chan error
	// How the server was started, for Restart.
	bin, dir string
	port     int
	args     []string
}

// Binary returns the redis-server path, or "" when it is not installed.
func Binary() string {
	if p := os.Getenv("REDIS_SERVER_BIN"); p != "" {
		return p
	}
	p, err := exec.LookPath("redis-server")
	if err != nil {
		return ""
	}
	return p
}

// Start runs a new redis-server for the test and returns it once it answers
// PING. It is stopped (and its directory removed) by t.Cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	return launch(t, "redis-server", nil, "--save", "", "--appendonly", "no")
}

// StartConfig runs redis-server the way a container would, with the
// configuration file conf (none when "") followed by the command-line
// options args, on a free loopback port in a temporary directory (port,
// bind, dir, logfile and daemonize are overridden after args). It is ready
// once it answers PING at all: a server with a password answers NOAUTH.
// Persistence is as conf and args say.
func StartConfig(t testing.TB, conf string, args ...string) *Server {
	t.Helper()
	head := args
	if conf != "" {
		head = append([]string{conf}, args...)
	}
	return launch(t, "redis-server with "+conf, head)
}

// launch starts redis-server with head and extra (see start) on a free port.
func launch(t testing.TB, what string, head []string, extra ...string) *Server {
	t.Helper()
	bin := Binary()
	if bin == "" {
		t.Fatal("redis-server not found on PATH: install it (Debian: apt-get install redis-server) or run `make test`, which does")
	}
	dir := t.TempDir()
	return onFreePort(t, what, func(port int) (*Server, error) {
		return start(bin, dir, port, head, extra...)
	}, (*Server).stop)
}

// onFreePort runs try on a free loopback port, trying another port when
// the chosen one was taken in between (up to 5 times), and registers stop
// with t.Cleanup.
func onFreePort[T any](t testing.TB, what string, try func(port int) (T, error), stop func(T)) T {
	t.Helper()
	var lastErr error
	for range 5 {
		port, err := freePort()
		if err != nil {
			t.Fatalf("find a free port: %v", err)
		}
		v, err := try(port)
		if err != nil {
			lastErr = err
			continue
		}
		t.Cleanup(func() { stop(v) })
		return v
	}
	t.Fatalf("start %s: %v", what, lastErr)
	var zero T
	return zero
}

// start runs bin with head (a configuration file and options), then the
// options that make it a test server, then extra.
func start(bin, dir string, port int, head []string, extra ...string) (*Server, error) {
	args := append(slices.Clone(head),
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--dir", dir,
		"--daemonize", "no",
		"--logfile", logPath(dir, port),
	)
	args = append(args, extra...)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	s := &Server{Addr: addr, URL: "redis://" + addr + "/0", bin: bin, dir: dir, port: port, args: args}
	if err := s.run(); err != nil {
		return nil, err
	}
	return s, nil
}

func logPath(dir string, port int) string {
	return filepath.Join(dir, fmt.Sprintf("redis-%d.log", port))
}

// run starts the server's process and returns once it answers PING (or
// NOAUTH); a server loading its AOF answers LOADING until it is done.
func (s *Server) run() error {
	cmd := exec.Command(s.bin, s.args...)
	// A configuration error is printed before the log file is opened.
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("redis-server on port %d exited: %v: %s%s", s.port, err, strings.TrimSpace(output.String()), tail(logPath(s.dir, s.port)))
		default:
		}
		c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1})
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := c.Ping(ctx).Err()
		var info string
		if err == nil {
			// Another test's server may hold the port this one was given
			// (both picked it free): it answers PING while ours fails to
			// bind. Only our own process will do.
			info, err = c.Info(ctx, "server").Result()
		}
		cancel()
		_ = c.Close()
		if err == nil && !strings.Contains(info, "process_id:"+strconv.Itoa(cmd.Process.Pid)+"\r\n") {
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("port %d is served by another redis-server", s.port)
		}
		if err == nil || strings.HasPrefix(err.Error(), "NOAUTH") {
			s.cmd = cmd
			s.exited = exited
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	<-exited
	return fmt.Errorf("redis-server on port %d did not answer PING within 10s", s.port)
}

func (s *Server) stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
}

// Kill ends the server with SIGKILL, as a crash would, and waits for the
// process to exit. Its directory stays, with whatever it had persisted
// (AOF, RDB), for Restart. Clients see connection errors until then.
func (s *Server) Kill() {
	s.stop()
}

// Restart starts a killed server again with the same options, port and
// directory, and returns once it has loaded its data and answers PING. The
// port can be briefly held (by a client's outgoing connection, say): bind
// errors are retried for 10s. The server is still stopped by the
// t.Cleanup of the Start that made it.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	if s.cmd != nil {
		t.Fatalf("restart redis-server on port %d: it is running (Kill it first)", s.port)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := s.run()
		if err == nil {
			return
		}
		if !strings.Contains(err.Error(), "in use") || time.Now().After(deadline) {
			t.Fatalf("restart redis-server on port %d: %v", s.port, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Client returns a go-redis client for the server, closed at test end.
func (s *Server) Client(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > 5 {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, " | ")
}

// CommandStats returns how many times Redis ran each command since its
// stats were last reset (INFO commandstats; commands run inside Lua scripts
// included, as Redis counts them), by lowercase name: "evalsha", "hset".
func CommandStats(t testing.TB, rdb *redis.Client) map[string]int64 {
	t.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatalf("INFO commandstats: %v", err)
	}
	out := map[string]int64{}
	for line := range strings.SplitSeq(info, "\n") {
		// cmdstat_hset:calls=12,usec=...
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		calls, _, _ := strings.Cut(strings.TrimPrefix(rest, "calls="), ",")
		n, _ := strconv.ParseInt(calls, 10, 64)
		out[strings.TrimPrefix(name, "cmdstat_")] = n
	}
	return out
}
