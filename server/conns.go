package server

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// connTracker remembers the server's open connections so that Shutdown can close the ones on which a
// client never sent a byte. fasthttp counts a new connection as busy from the moment it starts reading
// the first request, so an idle connection opened ahead of time (browsers preconnect, and Go's HTTP
// client keeps a spare connection from a dial race) would hold Shutdown until its deadline.
//
// It also bounds how long a write may wait for a client that has stopped reading (writeTimeout).
type connTracker struct {
	mu    sync.Mutex
	conns map[*trackedConn]struct{}

	// writeTimeout, when positive, fails a write to a connection that has taken no bytes for that long.
	writeTimeout time.Duration
}

type trackedConn struct {
	net.Conn
	t     *connTracker
	heard atomic.Bool // the client has sent something
	once  sync.Once

	// ahead holds bytes a close watch read while the server was not reading (watchClose): the next
	// Read returns them first. Only the watch writes it, and only while fasthttp does not read.
	ahead []byte
}

func (c *trackedConn) Read(p []byte) (int, error) {
	if len(c.ahead) > 0 {
		n := copy(p, c.ahead)
		c.ahead = c.ahead[n:]
		return n, nil
	}
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.heard.Store(true)
	}
	return n, err
}

// Write fails once the client has taken nothing for the tracker's write timeout. A client that stops
// reading fills the socket's buffers, and without a deadline the write would wait for ever: a stream's
// generation would hold the model, every other request waiting behind it. A failed write makes fasthttp
// close the connection and the stream's body pipe, so the stream's next flush fails and cancels its
// generation (see runStream and streamAPI). The deadline moves on with every write that makes progress,
// so a slow reader that keeps reading is not cut off; a stalled one is dropped between one and two
// timeouts after the last byte it took (the write that stalls usually made some progress first). It
// applies to every response, but only a stream writes for long.
func (c *trackedConn) Write(p []byte) (int, error) {
	timeout := c.t.writeTimeout
	if timeout <= 0 {
		return c.Conn.Write(p)
	}
	written := 0
	for {
		c.Conn.SetWriteDeadline(time.Now().Add(timeout))
		n, err := c.Conn.Write(p[written:])
		written += n
		var ne net.Error
		if err == nil || n == 0 || !errors.As(err, &ne) || !ne.Timeout() {
			return written, err
		}
	}
}

// watchClose returns a context that is cancelled with errClientGone when the client at the other end of
// conn closes it, for a request answered in one piece (a JSON API call without streaming): fasthttp
// gives handlers no such signal, and a generation nobody will read would otherwise hold the model. It
// works because an HTTP/1.1 client sends nothing while it waits for its answer: the watch reads the
// connection while fasthttp does not (after the request, before the response), and a read that ends
// means the client has gone. Bytes a pipelining client sends meanwhile end the watch and are kept for
// fasthttp's next read. stop ends the watch and must be called before the handler returns.
func watchClose(parent context.Context, conn net.Conn) (ctx context.Context, stop func()) {
	tc, ok := conn.(*trackedConn)
	if !ok {
		return parent, func() {}
	}
	ctx, cancel := context.WithCancelCause(parent)
	var stopping atomic.Bool
	done := make(chan struct{})
	// fasthttp's read deadline for the request (ReadTimeout) would end the watch of a long generation.
	tc.Conn.SetReadDeadline(time.Time{})
	go func() {
		defer close(done)
		buf := make([]byte, 512)
		n, err := tc.Conn.Read(buf)
		if n > 0 {
			tc.ahead = append(tc.ahead, buf[:n]...)
			return
		}
		var ne net.Error
		if err != nil && !stopping.Load() && !(errors.As(err, &ne) && ne.Timeout()) {
			cancel(errClientGone)
		}
	}()
	return ctx, func() {
		stopping.Store(true)
		tc.Conn.SetReadDeadline(time.Now()) // wakes the watch's Read
		<-done
		tc.Conn.SetReadDeadline(time.Time{}) // fasthttp sets its own before its next read
		cancel(nil)
	}
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
