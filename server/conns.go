package server

import (
	"net"
	"sync"
	"sync/atomic"
)

// connTracker remembers the server's open connections so that Shutdown can close the ones on which a
// client never sent a byte. fasthttp counts a new connection as busy from the moment it starts reading
// the first request, so an idle connection opened ahead of time (browsers preconnect, and Go's HTTP
// client keeps a spare connection from a dial race) would hold Shutdown until its deadline.
type connTracker struct {
	mu    sync.Mutex
	conns map[*trackedConn]struct{}
}

type trackedConn struct {
	net.Conn
	t     *connTracker
	heard atomic.Bool // the client has sent something
	once  sync.Once
}

func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.heard.Store(true)
	}
	return n, err
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.t.mu.Lock()
		delete(c.t.conns, c)
		c.t.mu.Unlock()
	})
	return c.Conn.Close()
}

type trackingListener struct {
	net.Listener
	t *connTracker
}

func (l trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, t: l.t}
	l.t.mu.Lock()
	if l.t.conns == nil {
		l.t.conns = map[*trackedConn]struct{}{}
	}
	l.t.conns[tc] = struct{}{}
	l.t.mu.Unlock()
	return tc, nil
}

// wrap returns ln with its connections tracked.
func (t *connTracker) wrap(ln net.Listener) net.Listener { return trackingListener{Listener: ln, t: t} }

// closeSilent closes the connections on which nothing was ever received: they carry no request, so
// nothing is lost.
func (t *connTracker) closeSilent() {
	t.mu.Lock()
	var silent []*trackedConn
	for c := range t.conns {
		if !c.heard.Load() {
			silent = append(silent, c)
		}
	}
	t.mu.Unlock()
	for _, c := range silent {
		c.Close()
	}
}
