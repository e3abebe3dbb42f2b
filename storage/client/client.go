package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/tsumiki-storage/tsumiki/storage/clustermap"
	"github.com/tsumiki-storage/tsumiki/storage/wire"
)

// attemptTimeout is Client.attempt: twice wire.SettleAfter, so that an
// OSD that answers slowly but answers is not given up.
const attemptTimeout = 2 * wire.SettleAfter

// Config configures a Client.
type Config struct {
	EtcdEndpoints []string // required unless Etcd is set
	Etcd          *clientv3.Client
	EtcdPrefix    string        // default "/tsumiki"
	Timeout       time.Duration // per operation when the context has no deadline; default 30s
	Logger        *zap.Logger   // default no-op
}

// Client reaches objects in the cluster. It is safe for concurrent use.
type Client struct {
	cfg     Config
	log     *zap.Logger
	etcd    *clientv3.Client
	ownEtcd bool
	maps    *clustermap.Store

	// attempt bounds one try at one OSD: an OSD that went silent (its
	// host lost power, a partition) is given up after it, and the PG's
	// other replicas are asked, instead of waiting out the operation's
	// whole deadline.
	attempt time.Duration
	timing  timing // of its connections (tests shorten it)

	mu      sync.Mutex // guards the following
	m       *clustermap.Map
	loaded  time.Time // when m was last read from the control plane
	leaders map[pgKey]int32
	conns   map[int32]*conn
	closed  bool
}

type pgKey struct{ pool, pg uint32 }

// New connects to the control plane and loads the cluster map.
func New(ctx context.Context, cfg Config) (*Client, error) {
	if cfg.EtcdPrefix == "" {
		cfg.EtcdPrefix = "/tsumiki"
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	c := &Client{cfg: cfg, log: cfg.Logger, etcd: cfg.Etcd, attempt: attemptTimeout, timing: defaultTiming, leaders: map[pgKey]int32{}, conns: map[int32]*conn{}}
	if c.etcd == nil {
		cli, err := clustermap.Dial(ctx, cfg.EtcdEndpoints, cfg.Logger)
		if err != nil {
			return nil, err
		}
		c.etcd, c.ownEtcd = cli, true
	}
	c.maps = clustermap.NewStore(c.etcd, cfg.EtcdPrefix, cfg.Logger)
	if _, err := c.Refresh(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Close drops every connection.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	conns := c.conns
	c.conns = map[int32]*conn{}
	c.mu.Unlock()
	for _, cn := range conns {
		cn.fail(errors.New("client closed"))
	}
	if c.ownEtcd {
		return c.etcd.Close()
	}
	return nil
}

// Maps returns the control-plane map store the client uses.
func (c *Client) Maps() *clustermap.Store { return c.maps }

// Map returns the newest cluster map the client has.
func (c *Client) Map() *clustermap.Map {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m
}

// Refresh reloads the cluster map from the control plane.
func (c *Client) Refresh(ctx context.Context) (*clustermap.Map, error) {
	m, err := c.maps.Load(ctx)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.loaded = time.Now()
	if c.m == nil || m.Epoch >= c.m.Epoch {
		c.m = m
	}
	return c.m, nil
}

// minReload is how often, at most, an unreachable OSD makes the client
// reread the map: many requests failing at once cost one read.
const minReload = 200 * time.Millisecond

// reloadAfterFailure rereads the map when an OSD could not be reached and
// the map is older than minReload: the OSD may have restarted on another
// address (its new one is in the map once it registered), or be marked down.
// A failed read is left to the next attempt.
func (c *Client) reloadAfterFailure(ctx context.Context) {
	c.mu.Lock()
	fresh := time.Since(c.loaded) < minReload
	if !fresh {
		c.loaded = time.Now() // claimed: concurrent failures do not all reread
	}
	c.mu.Unlock()
	if !fresh {
		_, _ = c.Refresh(ctx)
	}
}

func (c *Client) pool(ctx context.Context, name string) (clustermap.Pool, error) {
	if p, ok := c.Map().PoolByName(name); ok {
		return p, nil
	}
	m, err := c.Refresh(ctx)
	if err != nil {
		return clustermap.Pool{}, err
	}
	if p, ok := m.PoolByName(name); ok {
		return p, nil
	}
	return clustermap.Pool{}, fmt.Errorf("%w: %q (see `tsumiki pool ls`)", ErrNoPool, name)
}

func (c *Client) connTo(ctx context.Context, id int32) (*conn, error) {
	c.mu.Lock()
	cn := c.conns[id]
	o, ok := c.m.OSD(id)
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return nil, errors.New("client: closed")
	}
	if cn.usable(o.PublicAddr) {
		return cn, nil
	}
	if !ok {
		return nil, fmt.Errorf("client: osd.%d is not in the cluster map", id)
	}
	cn, err := dial(ctx, o.PublicAddr, c.timing)
	if err != nil {
		return nil, fmt.Errorf("client: connect to osd.%d at %s: %w", id, o.PublicAddr, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cur, known := c.m.OSD(id) // the map may have moved on while we dialed
	old := c.conns[id]
	switch {
	case !known:
		go cn.fail(errors.New("the osd left the map"))
		return nil, fmt.Errorf("client: osd.%d left the cluster map while connecting", id)
	case c.closed:
		go cn.fail(errors.New("client closed"))
		return nil, errors.New("client: closed")
	case old.usable(cur.PublicAddr):
		// Another call dialed at the same time and won: its connection
		// may already carry requests, so it stays and ours goes.
		go cn.fail(errors.New("a concurrent dial won"))
		return old, nil
	case cn.addr != cur.PublicAddr:
		go cn.fail(errors.New("the osd moved"))
		return nil, fmt.Errorf("client: osd.%d moved to %s while connecting to %s", id, cur.PublicAddr, cn.addr)
	}
	if old != nil {
		go old.retire() // its requests in flight end first
	}
	c.conns[id] = cn
	return cn, nil
}

// call sends one request to one OSD. into, if not nil, is where the
// answer's data goes when it has that length (see conn.call).
func (c *Client) call(ctx context.Context, id int32, req *wire.Request, into []byte) (wire.Response, error) {
	resp, _, err := c.callOn(ctx, id, req, into)
	return resp, err
}

// callOn is call, and also says which connection answered.
func (c *Client) callOn(ctx context.Context, id int32, req *wire.Request, into []byte) (wire.Response, *conn, error) {
	cn, err := c.connTo(ctx, id)
	if err != nil {
		return wire.Response{}, nil, err
	}
	resp, err := cn.call(ctx, req, into)
	return resp, cn, err
}

func (c *Client) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, c.cfg.Timeout)
}

// toLeader sends req to the leader of its PG, following not-leader hints,
// refreshing the map on stale epochs and backing off on transient answers,
// until ctx's deadline. into is passed to call.
func (c *Client) toLeader(ctx context.Context, req wire.Request, into []byte) (wire.Response, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	key := pgKey{req.Pool, req.PG}
	backoff := 5 * time.Millisecond
	var last error
	for attempt := 0; ; attempt++ {
		m := c.Map()
		p, ok := m.PoolByID(req.Pool)
		if !ok {
			return wire.Response{}, fmt.Errorf("%w: id %d", ErrNoPool, req.Pool)
		}
		c.mu.Lock()
		target, known := c.leaders[key]
		c.mu.Unlock()
		if !known {
			// Placement is computed only here: with the leader cached, a
			// request costs no straw2 draw (a few µs per request on a
			// large map).
			reps := upFirst(m, m.Replicas(p, req.PG))
			if len(reps) == 0 {
				return wire.Response{}, fmt.Errorf("%w: pg %d.%d maps to no osd", ErrUnavailable, req.Pool, req.PG)
			}
			target = reps[attempt%len(reps)]
		}
		r := req
		r.Epoch = m.Epoch
		actx, cancelAttempt := context.WithTimeout(ctx, c.attempt)
		resp, cn, err := c.callOn(actx, target, &r, into)
		cancelAttempt()
		retryNow := false
		switch {
		case err != nil:
			last = err
			c.forgetLeader(key, target)
			c.reloadAfterFailure(ctx)
		case resp.Status == wire.StatusOK:
			if !known {
				c.mu.Lock()
				c.leaders[key] = target
				c.mu.Unlock()
			}
			return resp, nil
		case resp.Status == wire.StatusNotLeader:
			last = &statusError{resp.Status, fmt.Sprintf("osd.%d", target)}
			c.mu.Lock()
			if resp.Leader >= 0 && resp.Leader != target {
				c.leaders[key] = resp.Leader
				retryNow = true
			} else {
				delete(c.leaders, key)
			}
			c.mu.Unlock()
		case resp.Status == wire.StatusStaleEpoch:
			last = &statusError{resp.Status, ""}
			nm, err := c.Refresh(ctx)
			switch {
			case err != nil:
			case nm.Epoch >= resp.Epoch:
				retryNow = true
			default:
				// The control plane's map is older than one the OSD has
				// seen: it went back (restored from a backup). Retrying at
				// once would loop on etcd and the OSD; say what to do.
				last = fmt.Errorf("%w: osd.%d has seen cluster map epoch %d, the control plane's is %d: "+
					"if the control plane was restored from a backup, run `tsumiki epoch raise %d` once every daemon uses it",
					ErrMapBehind, target, resp.Epoch, nm.Epoch, resp.Epoch+1)
			}
		case resp.Status == wire.StatusTooLate:
			// Not proposed: it waited too long to be read, or the two
			// ends' clocks drifted apart on this connection (a suspended
			// host): a new connection starts both clocks again. Not when
			// the budget itself was short (a caller near its deadline).
			last = &statusError{resp.Status, resp.Msg}
			if r.Budget == 0 || r.Budget >= 1000 {
				c.retireConn(target, cn)
			}
		case resp.Status == wire.StatusNoPG, resp.Status == wire.StatusDegraded,
			resp.Status == wire.StatusTimeout, resp.Status == wire.StatusClosing:
			last = &statusError{resp.Status, resp.Msg}
			c.forgetLeader(key, target)
		default:
			return resp, &statusError{resp.Status, resp.Msg}
		}
		if retryNow {
			continue
		}
		select {
		case <-ctx.Done():
			if errors.Is(last, ErrMapBehind) {
				return wire.Response{}, fmt.Errorf("%w: %s on pg %d.%d: %w", ErrUnavailable, req.Op, req.Pool, req.PG, last)
			}
			return wire.Response{}, fmt.Errorf("%w: %s on pg %d.%d: %v", ErrUnavailable, req.Op, req.Pool, req.PG, last)
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 500*time.Millisecond)
	}
}

// upFirst orders a PG's replicas for a client that does not know the
// leader: those the map shows up, then the down ones. A down OSD cut off
// the network costs a whole dial timeout to try, and one that is down in
// the map is seldom the leader (it may be, if only its link to the
// control plane broke, so it is tried last rather than never).
func upFirst(m *clustermap.Map, reps []int32) []int32 {
	out := make([]int32, 0, len(reps))
	for _, up := range []bool{true, false} {
		for _, id := range reps {
			if o, _ := m.OSD(id); o.Up == up {
				out = append(out, id)
			}
		}
	}
	return out
}

// retireConn stops using cn, the connection to OSD id, unless another
// has replaced it already; it ends once its requests in flight have.
func (c *Client) retireConn(id int32, cn *conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cn != nil && c.conns[id] == cn {
		delete(c.conns, id)
		go cn.retire()
	}
}

// forgetLeader drops the PG's cached leader if it is target (any when
// target is negative).
func (c *Client) forgetLeader(key pgKey, target int32) {
	c.mu.Lock()
	if target < 0 || c.leaders[key] == target {
		delete(c.leaders, key)
	}
	c.mu.Unlock()
}
