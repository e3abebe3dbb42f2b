package osd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/fileutil"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/tsumiki-storage/tsumiki/storage/chunkstore"
	"github.com/tsumiki-storage/tsumiki/storage/clustermap"
)

// Config configures one storage daemon (one device).
type Config struct {
	DataDir string  // required: the device's folder (store, identity, lock)
	Host    string  // required: failure domain "host"
	Class   string  // device class, default "hdd"
	Weight  float64 // placement weight; default 1

	Listen           string // public address, default 127.0.0.1:0
	ClusterListen    string // cluster (replication) address, default 127.0.0.1:0
	Advertise        string // public address others dial; default the bound Listen address
	ClusterAdvertise string // default the bound ClusterListen address

	EtcdEndpoints []string // required
	EtcdPrefix    string   // default "/tsumiki"
	LeaseTTL      time.Duration

	// FullRatio: the OSD reports its device full once this share of it is
	// used; while any OSD is full the cluster refuses writes. Default 0.95.
	FullRatio float64
	// SnapshotBehind is NodeConfig.SnapshotBehind: 0 keeps the raft log
	// for every replica. This OSD installs the snapshots sent to it either
	// way (over the cluster network).
	SnapshotBehind uint64
	// CopyRate is NodeConfig.CopyRate (bytes per second; 0: 100 MiB/s,
	// negative: no bound).
	CopyRate int64

	Store  chunkstore.Config // Dir and Logger are filled in
	Logger *zap.Logger       // required

	// Ready, if set, is called once the OSD is registered and serving.
	Ready func(id int32, public, cluster string)
}

func (c Config) withDefaults() Config {
	if c.Class == "" {
		c.Class = "hdd"
	}
	if c.Weight == 0 {
		c.Weight = 1
	}
	if c.FullRatio == 0 {
		c.FullRatio = 0.95
	}
	if c.Listen == "" {
		c.Listen = "127.0.0.1:0"
	}
	if c.ClusterListen == "" {
		c.ClusterListen = "127.0.0.1:0"
	}
	if c.EtcdPrefix == "" {
		c.EtcdPrefix = "/tsumiki"
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = 10 * time.Second
	}
	return c
}

// Validate reports the first broken rule of c.
func (c Config) Validate() error {
	switch {
	case c.DataDir == "":
		return fmt.Errorf("%w: --data is required", ErrConfig)
	case c.Host == "":
		return fmt.Errorf("%w: --host is required (the failure domain this disk belongs to)", ErrConfig)
	case c.Weight < 0:
		return fmt.Errorf("%w: weight %v is negative", ErrConfig, c.Weight)
	case len(c.EtcdEndpoints) == 0:
		return fmt.Errorf("%w: no etcd endpoints", ErrConfig)
	case c.Logger == nil:
		return fmt.Errorf("%w: no logger", ErrConfig)
	}
	return nil
}

// Daemon is one running OSD.
type Daemon struct{ cfg Config }

// NewDaemon validates cfg; Run does the work.
func NewDaemon(cfg Config) (*Daemon, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Daemon{cfg: cfg}, nil
}

const lockFile = "tsumiki-osd.lock"

// lockDir takes the data directory's lock so two daemons never share a store.
func lockDir(dir string) (*fileutil.LockedFile, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory %s: %w", dir, err)
	}
	path := filepath.Join(dir, lockFile)
	lf, err := fileutil.TryLockFile(path, os.O_RDWR|os.O_CREATE, fileutil.PrivateFileMode)
	if errors.Is(err, fileutil.ErrLocked) {
		holder, _ := os.ReadFile(path)
		return nil, fmt.Errorf("%w: %s is used by another tsumiki osd (pid %s); stop it or pass a different --data", ErrLocked, dir, strings.TrimSpace(string(holder)))
	}
	if err != nil {
		return nil, fmt.Errorf("lock data directory %s: %w", dir, err)
	}
	_ = lf.Truncate(0)
	_, _ = lf.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return lf, nil
}

// Run serves until ctx is done, then shuts down cleanly.
func (d *Daemon) Run(ctx context.Context) error {
	cfg := d.cfg
	log := cfg.Logger
	lf, err := lockDir(cfg.DataDir)
	if err != nil {
		return err
	}
	defer lf.Close()
	uuid, err := identity(cfg.DataDir)
	if err != nil {
		return fmt.Errorf("osd identity in %s: %w", cfg.DataDir, err)
	}
	scfg := cfg.Store
	scfg.Dir = filepath.Join(cfg.DataDir, "store")
	scfg.Logger = log.Named("store")
	st, err := chunkstore.Open(scfg)
	if err != nil {
		return err
	}
	defer st.Close()

	pub, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on public address %s: %w", cfg.Listen, err)
	}
	defer pub.Close()
	clu, err := net.Listen("tcp", cfg.ClusterListen)
	if err != nil {
		return fmt.Errorf("listen on cluster address %s: %w", cfg.ClusterListen, err)
	}
	defer clu.Close()
	pubAddr := advertised(cfg.Advertise, pub.Addr())
	cluAddr := advertised(cfg.ClusterAdvertise, clu.Addr())

	cli, err := clustermap.Dial(ctx, cfg.EtcdEndpoints, log)
	if err != nil {
		return err
	}
	defer cli.Close()
	cm := clustermap.NewStore(cli, cfg.EtcdPrefix, log)
	me, err := cm.RegisterOSD(ctx, clustermap.OSD{UUID: uuid, Host: cfg.Host, Class: cfg.Class, Weight: cfg.Weight, PublicAddr: pubAddr, ClusterAddr: cluAddr})
	if err != nil {
		return fmt.Errorf("register osd: %w", err)
	}
	if err := checkID(cfg.DataDir, me.ID); err != nil {
		return err
	}
	log = log.With(zap.Int32("osd", me.ID))

	tr := NewTCPTransport(me.ID, log.Named("transport"))
	node, err := NewNode(NodeConfig{ID: me.ID, Store: ChunkStore{st}, Transport: tr, Logger: log,
		SnapshotBehind: cfg.SnapshotBehind, Copier: tr, CopyRate: cfg.CopyRate})
	if err != nil {
		return err
	}
	srv := NewServer(node, ChunkStore{st}, log.Named("server"))

	g, gctx := errgroup.WithContext(ctx)
	tr.Start(gctx)
	// The transport's peer goroutines end with gctx, which errgroup
	// cancels only once a function has returned: waiting for them inside
	// node.Run's function hung the daemon for ever when its store failed
	// (the loop returned, the rest kept serving and renewing the lease).
	g.Go(func() error { return node.Run(gctx) })
	g.Go(func() error { return srv.Serve(gctx, pub) })
	g.Go(func() error { return ServeCluster(gctx, clu, node, log.Named("cluster")) })
	g.Go(func() error { return st.RunGC(gctx) })
	g.Go(func() error { return st.RunCheckpoints(gctx) })
	g.Go(func() error { sweep(gctx, st, log); return nil })
	g.Go(func() error { return cm.KeepAlive(gctx, me.ID, cfg.LeaseTTL) })
	g.Go(func() error { return watchFullness(gctx, cfg.DataDir, cfg.FullRatio, me.ID, cm, log) })
	g.Go(func() error {
		return cm.Watch(gctx, func(m *clustermap.Map) {
			if seen := srv.Epoch(); m.Epoch < seen {
				log.Error("the cluster map's epoch went back: was the control plane restored from a backup? Clients are refused as stale until it passes the epoch seen; run `tsumiki epoch raise` with one more once every daemon uses the restored control plane",
					zap.Uint64("epoch", m.Epoch), zap.Uint64("seen", seen), zap.Uint64("raise_to", seen+1))
			}
			applyMap(m, me.ID, node, srv, tr)
		})
	})
	log.Info("osd serving", zap.String("public", pubAddr), zap.String("cluster", cluAddr), zap.String("data", cfg.DataDir))
	if cfg.Ready != nil {
		cfg.Ready(me.ID, pubAddr, cluAddr)
	}
	err = g.Wait()
	tr.Wait()
	log.Info("osd stopped")
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

func advertised(adv string, bound net.Addr) string {
	if adv != "" {
		if _, port, err := net.SplitHostPort(adv); err == nil && port == "0" {
			host, _, _ := net.SplitHostPort(adv)
			_, bport, _ := net.SplitHostPort(bound.String())
			return net.JoinHostPort(host, bport)
		}
		if !strings.Contains(adv, ":") {
			_, bport, _ := net.SplitHostPort(bound.String())
			return net.JoinHostPort(adv, bport)
		}
		return adv
	}
	return bound.String()
}

// applyMap brings the node in line with a new cluster map: peer addresses,
// the epoch, a replica for every PG this OSD belongs to, and the members
// of every PG the operator moved.
func applyMap(m *clustermap.Map, self int32, node *Node, srv *Server, tr *TCPTransport) {
	addrs := make(map[int32]string, len(m.OSDs))
	var full []string
	var out []int32
	for _, o := range m.OSDs {
		addrs[o.ID] = o.ClusterAddr
		if !o.In {
			out = append(out, o.ID)
		}
		if o.Up && o.Full {
			full = append(full, fmt.Sprintf("osd.%d", o.ID))
		}
	}
	srv.SetFull(strings.Join(full, ", "))
	tr.SetAddrs(addrs)
	srv.SetEpoch(m.Epoch)
	node.HoldLeaders(m.HasFlag("noout"), out)
	node.HoldMoves(m.HasFlag("norebalance"))
	for _, p := range m.Pools {
		for pg := uint32(0); pg < p.PGNum; pg++ {
			if members, ok := m.Override(p.ID, pg); ok {
				// Moved by the operator: every OSD learns the members, and
				// the group follows (move.go). Never EnsurePG here: it
				// bootstraps the replica it creates, and a new member's
				// copy would be a group of its own.
				if err := node.MovePG(PG{Pool: p.ID, Seq: pg}, members, p.MinSize); err != nil {
					node.log.Error("the cluster map moves a pg to a list this osd cannot use", zap.Error(err))
				}
				continue
			}
			reps := m.Replicas(p, pg)
			for _, id := range reps {
				if id == self {
					node.EnsurePG(PG{Pool: p.ID, Seq: pg}, reps, p.MinSize)
					break
				}
			}
		}
	}
}

// sweep hands the stale slots a crash left allocated to the store's
// reclaim, once (chunkstore.Store.Sweep). A failure only costs space: it is
// logged, and the OSD goes on.
func sweep(ctx context.Context, st *chunkstore.Store, log *zap.Logger) {
	t0 := time.Now()
	res, err := st.Sweep(ctx)
	if err != nil {
		log.Warn("sweep for stale copies failed; their space stays used until their blocks are written again", zap.Error(err))
		return
	}
	if res.Punched > 0 || res.Reserved > 0 {
		log.Info("swept stale copies of blocks (left by a crash, or a store stopped before its checkpoint)",
			zap.Int("objects", res.Objects), zap.Int64("punched_blocks", res.Punched),
			zap.Int64("reserved_bytes", res.Reserved), zap.Duration("took", time.Since(t0)))
	}
}
