package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"understudy/broker"
	"understudy/group"
	"understudy/model"
	"understudy/pages"
	"understudy/publisher"
	"understudy/snapshot"
	"understudy/subscriber"
)

// Node is a serving node: a primary, or a backup that serves once it is
// promoted. Build one with New and run it with Run.
type Node struct {
	cfg Config
	eng *model.Engine
	log *slog.Logger
	met *metrics
	ui  *pages.UI

	// Set up by Run.
	nc      *nats.Conn // snapshots: publishes, the copy, reads
	leaseNC *nats.Conn // the group membership alone (see join)
	stream  jetstream.Stream
	pub     *publisher.Publisher
	sub     *subscriber.Subscriber // nil for a cold standby
	reader  *subscriber.Reader
	member  *group.Member

	serving  atomic.Bool // promoted (or claimed) and not handing over
	draining atomic.Bool // handing over: refuse new interactions
	epoch    atomic.Uint64
	started  atomic.Bool            // connected and joined
	joining  atomic.Pointer[string] // what join is doing, until started

	sessions *table
	purges   purges
	// sweepNow wakes the sweep at a promotion: a primary whose tenure is
	// shorter than the sweep's period would otherwise never end what the
	// old one left finished or idle.
	sweepNow chan struct{}
	limiter  *limiter
	inflight gate // interactions being handled
	admit    *admission

	copyMu sync.Mutex // followRole's
	// unreadableLogged is when checkReadable last logged (Unix ns), so
	// that a member left on an old build does not flood the log.
	unreadableLogged atomic.Int64
	bg               sync.WaitGroup  // background work of promotions and demotions
	bgCtx            context.Context // cancelled at shutdown
	bgStop           context.CancelFunc

	listener net.Listener
	httpSrv  *http.Server
}

// New returns a node that runs the applications of reg, resolving entities
// with res (nil when the applications use none). It does no I/O.
func New(cfg Config, reg *model.Registry, res model.Resolver) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	cfg = cfg.withDefaults()
	n := &Node{
		cfg: cfg, eng: model.NewEngine(reg, res), log: cfg.Logger.With("node", cfg.Node),
		sessions: newTable(), limiter: newLimiter(cfg.NewPerMinute), admit: newAdmission(cfg.MaxInFlight, cfg.AdmissionWait),
		sweepNow: make(chan struct{}, 1),
	}
	n.bgCtx, n.bgStop = context.WithCancel(context.Background())
	n.met = newMetrics(n)
	ui, err := pages.New(cfg.Templates)
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	n.ui = ui
	return n, nil
}

// Listen opens the HTTP listener, so a caller (a test, a supervisor) knows
// the address before Run. Run calls it if the caller did not.
func (n *Node) Listen() (net.Addr, error) {
	if n.listener != nil {
		return n.listener.Addr(), nil
	}
	ln, err := net.Listen("tcp", n.cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("node %s: listen %s: %w", n.cfg.Node, n.cfg.Listen, err)
	}
	n.listener = ln
	if n.cfg.Address == "" {
		scheme := "http://"
		if n.cfg.TLSCert != "" {
			scheme = "https://"
		}
		n.cfg.Address = scheme + ln.Addr().String()
	}
	return ln.Addr(), nil
}

// Run connects to NATS, joins the group, serves HTTP, and claims the group
// when started as primary. It returns when ctx ends, after handing over
// gracefully: in-flight interactions finish, the lease is released so a
// backup claims at once, and everything is closed.
func (n *Node) Run(ctx context.Context) error {
	if _, err := n.Listen(); err != nil {
		return err
	}
	n.httpSrv = &http.Server{
		Handler:           n.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(n.log.Handler(), slog.LevelWarn),
	}
	httpErr := make(chan error, 1)
	go func() {
		var err error
		if n.cfg.TLSCert != "" {
			n.httpSrv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
			err = n.httpSrv.ServeTLS(n.listener, n.cfg.TLSCert, n.cfg.TLSKey)
		} else {
			err = n.httpSrv.Serve(n.listener)
		}
		if !errors.Is(err, http.ErrServerClosed) {
			httpErr <- err
		}
		close(httpErr)
	}()
	n.log.Info("listening", "addr", n.listener.Addr().String(), "address", n.cfg.Address, "role", n.cfg.Role, "replication", n.cfg.Replication)

	err := n.join(ctx)
	if err == nil {
		select {
		case <-ctx.Done():
		case err = <-httpErr:
			err = fmt.Errorf("node %s: http: %w", n.cfg.Node, err)
		}
	}
	n.shutdown()
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return nil
	}
	return err
}

// join connects to NATS (retrying until it answers), provisions the stream
// and bucket, starts replication and the group membership, and claims the
// group when started as primary.
func (n *Node) join(ctx context.Context) error {
	n.setJoining("connecting to NATS at " + n.cfg.NATS.RedactedURL() + " (retrying until it answers)")
	nc, err := broker.Connect(ctx, n.cfg.NATS)
	if err != nil {
		return fmt.Errorf("node %s: %w", n.cfg.Node, err)
	}
	n.nc = nc
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("node %s: %w", n.cfg.Node, err)
	}
	n.setJoining("provisioning the session stream and the groups bucket (retrying until NATS has a JetStream leader)")
	stream, kv, err := broker.Provision(ctx, js, n.cfg.Stream, n.cfg.Bucket, n.log)
	if err != nil {
		return fmt.Errorf("node %s: %w", n.cfg.Node, err)
	}
	n.stream = stream
	// The lease has a connection of its own: a renewal never waits behind
	// snapshot publishes, their acks or the copy's stream (in the client's
	// buffers, and in the server, which reads one connection in order).
	leaseNATS := n.cfg.NATS
	leaseNATS.Name += "-lease"
	n.setJoining("connecting the lease's own connection to NATS")
	lnc, err := broker.Connect(ctx, leaseNATS)
	if err != nil {
		return fmt.Errorf("node %s: lease connection: %w", n.cfg.Node, err)
	}
	n.leaseNC = lnc
	ljs, err := jetstream.New(lnc)
	if err != nil {
		return fmt.Errorf("node %s: lease connection: %w", n.cfg.Node, err)
	}
	var (
		lkv     jetstream.KeyValue
		lstream jetstream.Stream
	)
	n.setJoining("binding the lease's connection to the bucket and stream (retrying until NATS answers)")
	err = broker.Retry(ctx, n.log, "binding the lease's connection to the bucket and stream", nil, func() error {
		var err error
		if lkv, err = ljs.KeyValue(ctx, kv.Bucket()); err != nil {
			return fmt.Errorf("bucket %s: %w", kv.Bucket(), err)
		}
		if lstream, err = ljs.Stream(ctx, stream.CachedInfo().Config.Name); err != nil {
			return fmt.Errorf("stream: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("node %s: lease connection: %w", n.cfg.Node, err)
	}

	fence := &lateFence{}
	n.pub = publisher.New(js, n.stream, publisher.Config{
		Subjects: n.cfg.Subjects, Node: n.cfg.Node, Fence: fence, Sealer: n.cfg.Sealer, Logger: n.log, Bugs: n.cfg.Bugs,
		OnAsyncError: func(err error) { n.met.asyncErrors.Inc(); n.log.Error("async publish", "err", err) },
		// The copy holds what this node stores as it stores it: a primary
		// does not consume its own stream (see followRole).
		OnStored: func(st snapshot.Stored) {
			if n.sub != nil && !n.cfg.Bugs.PausedCopyNoOwn {
				n.sub.Own(st)
			}
		},
	})
	subCfg := subscriber.Config{
		Subjects: n.cfg.Subjects, Fence: fence, Sealer: n.cfg.Sealer, Logger: n.log, Bugs: n.cfg.Bugs,
		OnQuarantine: n.met.quarantine,
	}
	n.reader = subscriber.NewReader(n.stream, subCfg)
	subCfg.OnEnded = func(m snapshot.Meta) {
		n.schedulePurge(m.Session, m.StreamSeq, m.Time, m.Epoch)
	}
	hooks := group.Hooks{
		Promote:  n.promote,
		Demote:   n.demote,
		Progress: n.progress,
		Renewed: func(took time.Duration, landed bool) {
			n.met.renewalSeconds.Observe(took.Seconds())
			if landed {
				n.met.renewals.WithLabelValues("landed").Inc()
			} else {
				n.met.renewals.WithLabelValues("failed").Inc()
			}
		},
	}
	if !n.cfg.Cold {
		n.sub = subscriber.New(js, n.stream, subCfg)
		hooks.Drain = func(ctx context.Context, seq uint64) error {
			// A node demoted a moment ago may not have resumed its copy
			// yet (followRole runs in the background).
			if err := n.sub.Resume(ctx); err != nil {
				return err
			}
			err := n.sub.DrainTo(ctx, seq)
			n.fault("drained")
			return err
		}
		// The subscriber's resolver judges what it holds by the new claims,
		// and retries until it can.
		hooks.Claims = func(snapshot.Claims) { n.sub.Kick() }
	}
	gcfg := n.cfg.Group
	gcfg.Address = n.cfg.Address
	gcfg.Bugs = n.cfg.Bugs
	gcfg.Apps = n.eng.Registry().Keys() // announced: see upgrade.go
	n.member = group.New(lnc, lkv, lstream, gcfg, hooks)
	n.member.Watch(nc) // a primary that cannot publish hands the group on
	fence.f = n.member.Fence()

	n.setJoining("starting replication and joining the group")
	if n.sub != nil {
		// Its consumer is created on the server, which may be busy or
		// electing a leader: tried again until it answers.
		err := broker.Retry(ctx, n.log, "starting the copy's consumer", func(err error) bool {
			return errors.Is(err, subscriber.ErrStarted) || errors.Is(err, subscriber.ErrClosed) || errors.Is(err, subscriber.ErrInvalidConfig)
		}, func() error { return n.sub.Start(ctx) })
		if err != nil {
			return fmt.Errorf("node %s: %w", n.cfg.Node, err)
		}
	}
	if err := n.member.Start(ctx); err != nil {
		return fmt.Errorf("node %s: %w", n.cfg.Node, err)
	}
	if _, err := nc.Subscribe(n.cfg.Subjects.EraseSubject(), n.onErase); err != nil {
		return fmt.Errorf("node %s: subscribe erase: %w", n.cfg.Node, err)
	}
	n.started.Store(true)
	n.background(n.sweep)

	if n.cfg.Role != RolePrimary {
		n.log.Info("running as a backup", "cold", n.cfg.Cold)
		return nil
	}
	if n.sub != nil {
		if err := n.sub.WaitCaughtUp(ctx); err != nil {
			return fmt.Errorf("node %s: catch up: %w", n.cfg.Node, err)
		}
	}
	if err := n.member.Claim(ctx); err != nil {
		if errors.Is(err, group.ErrHeld) {
			n.log.Warn("started as primary, running as a backup", "reason", err)
			return nil
		}
		return fmt.Errorf("node %s: %w", n.cfg.Node, err)
	}
	return nil
}

func (n *Node) setJoining(what string) { n.joining.Store(&what) }

// lateFence lets the publisher and subscriber be built before the member
// whose claims they judge by.
type lateFence struct{ f snapshot.Fence }

func (l *lateFence) Fenced(epoch, seq uint64) bool {
	if l.f == nil {
		return false
	}
	return l.f.Fenced(epoch, seq)
}

// promote is called when this node has claimed the group.
func (n *Node) promote(ctx context.Context, p group.Promotion) (int, error) {
	n.fault("promote")
	// What is in memory from an older epoch is loaded again from the copy
	// at its next use (see session.epoch); the objects stay, so a request
	// still running from before holds the only one of its session.
	n.epoch.Store(p.Epoch)
	n.serving.Store(true)
	n.met.failovers.Inc()
	held := 0
	if n.sub != nil {
		held = n.sub.Len()
	}
	n.background(n.followRole)
	n.background(func(ctx context.Context) { n.adoptAll(ctx, p.Epoch) })
	if n.sub == nil {
		n.background(func(ctx context.Context) { n.scanTombstones(ctx, p.Epoch) })
	}
	n.kickSweep()
	return held, nil
}

// followRole makes the copy follow the node's role: paused while it serves
// as the primary (the publisher hands it what the node stores: see
// subscriber.Subscriber.Own), consuming otherwise. It runs in the
// background at every promotion and demotion and reads the role under its
// own lock, so that the last change wins whatever order the calls run in.
// A resume that fails (NATS away) is tried again until it succeeds or the
// role changes.
func (n *Node) followRole(ctx context.Context) {
	if n.sub == nil {
		return
	}
	n.copyMu.Lock()
	defer n.copyMu.Unlock()
	for wait := 100 * time.Millisecond; ctx.Err() == nil; wait = min(2*wait, 5*time.Second) {
		var err error
		if n.serving.Load() {
			err = n.sub.Pause(ctx)
		} else {
			err = n.sub.Resume(ctx)
		}
		if err == nil || errors.Is(err, subscriber.ErrClosed) {
			return
		}
		n.log.Warn("copy of the stream: cannot follow the role yet", "serving", n.serving.Load(), "retry_in", wait, "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
}

func (n *Node) fault(point string) {
	if n.cfg.Fault != nil {
		n.cfg.Fault(point)
	}
}

// demote is called when this node stops being the primary.
// It returns at once: the memory of the sessions is released in the
// background, waiting for each one's request in flight, so that the
// group's monitor loop never waits on a session.
func (n *Node) demote(err error) {
	n.serving.Store(false)
	if err != nil {
		n.met.fenced.Inc()
	}
	n.background(n.followRole)
	n.background(func(ctx context.Context) {
		dropped := n.sessions.release(func(s *session) bool {
			return n.serving.Load() && s.epoch == n.epoch.Load()
		})
		if !n.serving.Load() && n.pub != nil {
			n.pub.Reset()
		}
		n.log.Info("released the sessions in memory after demotion", "sessions", dropped)
	})
}

// background runs fn in a goroutine that shutdown waits for.
func (n *Node) background(fn func(ctx context.Context)) {
	n.bg.Add(1)
	go func() {
		defer n.bg.Done()
		fn(n.bgCtx)
	}()
}

// leaseValid reports whether this node may act as the primary now: its
// lease is valid, or it replicates nothing.
func (n *Node) leaseValid() bool {
	return n.cfg.Replication == Off || n.member.Valid()
}

// mayAnswer is the answer rule: an interaction applied (and published) at
// epoch may be answered only while the lease is valid and epoch is still
// the current one. A valid lease of a later epoch is not enough.
func (n *Node) mayAnswer(epoch uint64) bool {
	if n.cfg.Replication == Off {
		return true
	}
	return n.member.MayAnswer(epoch)
}

func (n *Node) progress() (uint64, int, bool) {
	if n.sub == nil {
		return 0, 0, true
	}
	n.met.lag.observe(n.sub.Lag(), time.Now())
	return n.sub.Lag(), n.sub.Len(), n.sub.CaughtUp()
}

// shutdown hands over and closes everything.
func (n *Node) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n.draining.Store(true)
	select {
	case <-n.inflight.close():
	case <-ctx.Done():
		n.log.Warn("interactions still in flight at shutdown")
	}
	if n.pub != nil {
		if err := n.pub.Close(ctx); err != nil {
			n.log.Error("close publisher", "err", err)
		}
	}
	if n.member != nil {
		if n.member.Role() == group.Primary {
			if err := n.member.Release(ctx); err != nil {
				n.log.Error("release the group", "err", err)
			} else {
				n.log.Info("released the group")
			}
		}
		n.member.Close(ctx)
	}
	if n.httpSrv != nil {
		n.httpSrv.Shutdown(ctx)
	}
	n.bgStop()
	n.bg.Wait()
	if n.sub != nil {
		n.sub.Close(ctx)
	}
	if n.nc != nil {
		n.nc.Drain()
	}
	if n.leaseNC != nil {
		n.leaseNC.Drain()
	}
}
