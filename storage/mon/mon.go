package mon

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Mon is one control-plane member. Create it with New and run it with Run;
// a Mon runs at most once at a time.
type Mon struct {
	cfg      Config
	log      *zap.Logger
	stopping atomic.Bool // Run was told to stop (see stopCore)
}

// New validates cfg (after applying defaults) and returns a Mon. It starts
// nothing. Errors wrap ErrInvalidConfig.
func New(cfg Config) (*Mon, error) {
	c := cfg.withDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &Mon{cfg: c, log: c.Logger.With(zap.String("member", c.Name))}, nil
}

// ClientURLs returns the advertised client URLs, the endpoints clients use.
func (m *Mon) ClientURLs() []string { return splitList(m.cfg.AdvertiseClient) }

// Run starts etcd, waits until the member is ready, calls ready (if non-nil)
// with the advertised client URLs, and serves until ctx is done or etcd
// fails. It always shuts etcd down before returning.
//
// Run returns nil when ctx ends it. Otherwise the error wraps
// ErrDataDirInUse (another mon or etcd holds DataDir), ErrNotReady (not
// ready within ReadyTimeout), ErrStopped (etcd stopped on its own), or the
// error etcd failed to start with.
func (m *Mon) Run(ctx context.Context, ready func(clientURLs []string)) error {
	c := m.cfg
	unlock, err := lockDataDir(c.DataDir)
	if err != nil {
		return err
	}
	defer unlock()
	if err := clearCutFirstStart(c.DataDir, m.log); err != nil {
		return err
	}

	m.stopping.Store(false)
	ec, err := c.etcdConfig(&m.stopping)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	e, err := embed.StartEtcd(ec)
	if err != nil {
		return startError(c, err)
	}
	serving := false
	defer func() {
		if !serving {
			// etcd's Close waits for its client servers, which start
			// only once the member is ready: without this a member
			// that never got ready (no quorum, a cut first start) hung
			// here for ever, on a timeout or Ctrl-C alike
			// (etcd-io/etcd#9533).
			e.Server.Stop()
		}
		e.Close()
	}()

	timer := time.NewTimer(c.ReadyTimeout)
	defer timer.Stop()
	select {
	case <-e.Server.ReadyNotify():
	case <-ctx.Done():
		m.stopping.Store(true)
		return nil
	case err := <-e.Err():
		return fmt.Errorf("%w: member %q while starting: %w", ErrStopped, c.Name, err)
	case <-e.Server.StopNotify():
		return fmt.Errorf("%w: member %q stopped while starting; see the etcd log above", ErrStopped, c.Name)
	case <-timer.C:
		return fmt.Errorf("%w: member %q not ready after %v: a new cluster needs a majority of the members in --initial-cluster (%s) started; check that their peer URLs are reachable",
			ErrNotReady, c.Name, c.ReadyTimeout, c.InitialCluster)
	}
	serving = true
	m.log.Info("control plane member ready", zap.Strings("client-urls", m.ClientURLs()), zap.String("data-dir", c.DataDir))
	if ready != nil {
		ready(m.ClientURLs())
	}

	select {
	case <-ctx.Done():
		m.log.Info("control plane member stopping")
		m.stopping.Store(true)
		return nil
	case err := <-e.Err():
		return fmt.Errorf("%w: member %q: %w", ErrStopped, c.Name, err)
	case <-e.Server.StopNotify():
		return fmt.Errorf("%w: member %q (removed from the cluster or failed); see the etcd log above", ErrStopped, c.Name)
	}
}

// startError explains a failure of embed.StartEtcd.
func startError(c Config, err error) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("mon: start member %q: %w; another mon or etcd listens on %s or %s: stop it or choose other --listen URLs",
			c.Name, err, c.ListenClient, c.ListenPeer)
	}
	return fmt.Errorf("mon: start member %q in %s: %w", c.Name, c.DataDir, err)
}
