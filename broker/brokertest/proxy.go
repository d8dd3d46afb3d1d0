package brokertest

import (
	"net"
	"sync"
	"testing"
	"time"
)

// Proxy is a TCP proxy between NATS clients and a server, for tests of a
// network that misbehaves: it can hold back everything the server sends
// (requests still reach the server, answers wait: an ack that arrives too
// late), delay what goes either way (a latency spike), cut every
// connection (the network dropped), and refuse new ones.
type Proxy struct {
	ln     net.Listener
	target string

	mu      sync.Mutex
	cond    *sync.Cond
	paused  bool
	refuse  bool
	delay   [2]time.Duration // to the server, from the server
	conns   map[net.Conn]struct{}
	closed  bool
	stopped sync.WaitGroup
}

// NewProxy listens on a random loopback port and forwards to target
// ("host:port"). It is closed in tb.Cleanup.
func NewProxy(tb testing.TB, target string) *Proxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("proxy: %v", err)
	}
	p := &Proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.cond = sync.NewCond(&p.mu)
	p.stopped.Add(1)
	go p.accept()
	tb.Cleanup(p.Close)
	return p
}

// URL is the nats:// URL clients connect to.
func (p *Proxy) URL() string { return "nats://" + p.ln.Addr().String() }

func (p *Proxy) accept() {
	defer p.stopped.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.refuse || p.closed {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.mu.Unlock()
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[s] = struct{}{}, struct{}{}
		p.mu.Unlock()
		go p.pipe(s, c, false)
		go p.pipe(c, s, true)
	}
}

// chunk is what one read brought, and when it may be written on.
type chunk struct {
	data []byte
	due  time.Time
}

// pipe copies src to dst; bytes from the server wait while paused, and
// every chunk waits out the delay its direction had when it was read.
func (p *Proxy) pipe(dst, src net.Conn, fromServer bool) {
	dir := 0
	if fromServer {
		dir = 1
	}
	chunks := make(chan chunk, 256)
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		for c := range chunks {
			if d := time.Until(c.due); d > 0 {
				time.Sleep(d)
			}
			if fromServer {
				p.mu.Lock()
				for p.paused && !p.closed {
					p.cond.Wait()
				}
				p.mu.Unlock()
			}
			if _, err := dst.Write(c.data); err != nil {
				src.Close() // the reader stops too
				for range chunks {
				}
				return
			}
		}
	}()
	defer func() {
		close(chunks)
		<-wrote
		dst.Close()
		src.Close()
		p.mu.Lock()
		delete(p.conns, dst)
		delete(p.conns, src)
		p.mu.Unlock()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			due := time.Now().Add(p.delay[dir])
			p.mu.Unlock()
			chunks <- chunk{data: append([]byte(nil), buf[:n]...), due: due}
		}
		if err != nil {
			return
		}
	}
}

// Delay makes everything sent to the server wait toServer, and everything
// it sends wait fromServer, from now on (0: no delay). Order is kept.
func (p *Proxy) Delay(toServer, fromServer time.Duration) {
	p.mu.Lock()
	p.delay = [2]time.Duration{toServer, fromServer}
	p.mu.Unlock()
}

// Pause holds back everything the server sends until Resume.
func (p *Proxy) Pause() {
	p.mu.Lock()
	p.paused = true
	p.mu.Unlock()
}

// Resume delivers what was held back and forwards again.
func (p *Proxy) Resume() {
	p.mu.Lock()
	p.paused = false
	p.cond.Broadcast()
	p.mu.Unlock()
}

// Cut closes every connection, as a network drop would; clients may
// reconnect unless Refuse is set.
func (p *Proxy) Cut() {
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
}

// Refuse makes the proxy close new connections at once (true) or accept
// them again (false).
func (p *Proxy) Refuse(refuse bool) {
	p.mu.Lock()
	p.refuse = refuse
	p.mu.Unlock()
}

// Close stops the proxy and closes every connection.
func (p *Proxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.cond.Broadcast()
	p.mu.Unlock()
	p.ln.Close()
	p.Cut()
	p.stopped.Wait()
}
