package simulator

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// Running is a Server listening on a TCP address, as Start returns it.
type Running struct {
	srv  *Server
	hs   *http.Server
	addr net.Addr

	served   chan struct{} // closed when Serve has returned
	serveErr error         // Serve's error, other than http.ErrServerClosed

	stopWatch func() bool   // stops the ctx watcher; false if it has started
	watched   chan struct{} // closed when the ctx watcher has finished
	unwatch   sync.Once
	watching  bool // the ctx watcher started before it could be stopped

	once    sync.Once
	stopErr error

	connMu sync.Mutex
	fresh  map[net.Conn]struct{} // connections that have not sent a request yet
}

// Start validates cfg, listens on addr ("127.0.0.1:0" picks a free port) and
// serves the simulator until ctx is done or Shutdown or Close is called.
// Whichever way it stops, Shutdown or Close must be called to wait for it.
func Start(ctx context.Context, cfg Config, addr string) (*Running, error) {
	srv, err := New(cfg)
	if err != nil {
		return nil, err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("simulator: listen on %s: %w", addr, err)
	}
	r := &Running{
		srv:     srv,
		hs:      &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second},
		addr:    ln.Addr(),
		served:  make(chan struct{}),
		watched: make(chan struct{}),
		fresh:   map[net.Conn]struct{}{},
	}
	r.hs.ConnState = r.trackFresh
	go func() {
		defer close(r.served)
		if err := r.hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			r.serveErr = err
		}
	}()
	r.stopWatch = context.AfterFunc(ctx, func() {
		defer close(r.watched)
		ctx, cancel := context.WithTimeout(context.Background(), gracePeriod)
		defer cancel()
		_ = r.shutdown(ctx)
	})
	return r, nil
}

// Server returns the running Server, for Stats, SetFaults and Reset.
func (r *Running) Server() *Server { return r.srv }

// Addr returns the address listened on, such as "127.0.0.1:41234".
func (r *Running) Addr() string { return r.addr.String() }

// URL returns the base URL for OpenAI clients, such as
// "http://127.0.0.1:41234/v1". A wildcard listen address is reached through
// the loopback interface.
func (r *Running) URL() string {
	addr := r.addr.String()
	if tcp, ok := r.addr.(*net.TCPAddr); ok && tcp.IP.IsUnspecified() {
		addr = net.JoinHostPort("127.0.0.1", fmt.Sprint(tcp.Port))
	}
	return "http://" + addr + "/v1"
}

// Done is closed when the server has stopped serving: after a shutdown, or
// when serving failed (Shutdown then returns why).
func (r *Running) Done() <-chan struct{} { return r.served }

// Shutdown releases held requests, stops accepting connections, waits for
// in-flight requests until ctx is done (then closes them) and waits for the
// serving goroutine. It returns the serving error, if serving failed, or
// ctx's error if requests were cut short. Safe to call more than once.
func (r *Running) Shutdown(ctx context.Context) error {
	r.unwatch.Do(func() { r.watching = !r.stopWatch() })
	if r.watching {
		// ctx of Start is done and its watcher is shutting down.
		<-r.watched
	}
	return r.shutdown(ctx)
}

// gracePeriod bounds the wait for in-flight requests in Close and when the
// ctx of Start is done.
const gracePeriod = 5 * time.Second

// Close is Shutdown with a five second grace period.
func (r *Running) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), gracePeriod)
	defer cancel()
	return r.Shutdown(ctx)
}

func (r *Running) shutdown(ctx context.Context) error {
	r.once.Do(func() {
		r.srv.Close()
		// http.Server.Shutdown waits 5 s for connections that have not
		// sent a request (a client's spare dial), so close those meanwhile.
		done := make(chan error, 1)
		go func() { done <- r.hs.Shutdown(ctx) }()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		var err error
	wait:
		for {
			r.closeFresh()
			select {
			case err = <-done:
				break wait
			case <-tick.C:
			}
		}
		if err != nil {
			err = errors.Join(err, r.hs.Close())
		}
		<-r.served
		r.stopErr = errors.Join(r.serveErr, err)
	})
	return r.stopErr
}

func (r *Running) trackFresh(c net.Conn, state http.ConnState) {
	r.connMu.Lock()
	defer r.connMu.Unlock()
	if state == http.StateNew {
		r.fresh[c] = struct{}{}
	} else {
		delete(r.fresh, c)
	}
}

func (r *Running) closeFresh() {
	r.connMu.Lock()
	defer r.connMu.Unlock()
	for c := range r.fresh {
		_ = c.Close()
		delete(r.fresh, c)
	}
}
