package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/tsumiki-storage/tsumiki/blockdev/image"
	"github.com/tsumiki-storage/tsumiki/storage/chunkstore"
	"github.com/tsumiki-storage/tsumiki/storage/client"
	"github.com/tsumiki-storage/tsumiki/storage/clustermap"
	"github.com/tsumiki-storage/tsumiki/storage/mon"
	"github.com/tsumiki-storage/tsumiki/storage/osd"
)

// upConfig is `tsumiki up`'s configuration (configs/up.yaml).
type upConfig struct {
	Data           string `yaml:"data" flag:"data"`
	ListenClient   string `yaml:"listen_client" flag:"listen-client"`
	ListenPeer     string `yaml:"listen_peer" flag:"listen-peer"`
	OSDs           int    `yaml:"osds" flag:"osds"`
	OSDPort        int    `yaml:"osd_port" flag:"osd-port"`
	ClusterPort    int    `yaml:"cluster_port" flag:"cluster-port"`
	AdvertiseHost  string `yaml:"advertise_host" flag:"advertise-host"`
	Pool           string `yaml:"pool" flag:"pool"`
	PGNum          uint32 `yaml:"pg_num" flag:"pg-num"`
	NBDListen      string `yaml:"nbd_listen" flag:"nbd-listen"`
	DemoImage      string `yaml:"demo_image" flag:"demo-image"`
	DemoSize       string `yaml:"demo_size" flag:"demo-size"`
	DebugAddr      string `yaml:"debug_addr" flag:"debug-addr"`
	NFSImage       string `yaml:"nfs_image" flag:"nfs-image"`
	NFSSize        string `yaml:"nfs_size" flag:"nfs-size"`
	NFSExport      string `yaml:"nfs_export" flag:"nfs-export"`
	NFSListen      string `yaml:"nfs_listen" flag:"nfs-listen"`
	NFSPortmap     string `yaml:"nfs_portmap_listen" flag:"nfs-portmap-listen"`
	LogLargeWrites bool   `yaml:"log_large_writes" flag:"log-large-writes"`
	SnapshotBehind uint64 `yaml:"snapshot_behind" flag:"snapshot-behind"`
}

func newUpCmd(g *globals) *cobra.Command {
	var cfg upConfig
	var cfgPath string
	cmd := &cobra.Command{
		Use:   "up --data DIR",
		Short: "run a whole cluster on this machine: a mon, 3 OSDs and a default pool",
		Long: `Starts everything on one machine, with all data under --data: an embedded
control plane (DIR/mon), --osds storage daemons on DIR/osd.N (failure domain
osd, so one machine is enough), a pool "rbd" of size 3, the NBD server and,
where this host allows it (root, the nbd kernel module), the NFS gateway for
--nfs-image (clients on this machine only; ` + "`tsumiki nfs serve --config`" + ` for
more). Prints where everything listens; ` + "`tsumiki status`" + ` lists the
gateways, or why one is not running. Stops cleanly on Ctrl-C or SIGTERM; starting it again on
the same DIR brings every object back.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := loadConfig(cmd, cfgPath, &cfg); err != nil {
				return err
			}
			if cfg.Data == "" {
				return errors.New("--data DIR is required (all of the cluster's data goes there)")
			}
			if cfg.OSDs < 1 {
				return errors.New("--osds must be at least 1")
			}
			log, err := newLogger(g)
			if err != nil {
				return err
			}
			defer log.Sync()
			return runUp(cmd.Context(), cfg, g, log)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfgPath, "config", "", "YAML config file (see configs/up.yaml); flags override it")
	f.StringVar(&cfg.Data, "data", "", "folder for all data (required)")
	f.StringVar(&cfg.ListenClient, "listen-client", mon.DefaultListenClient, "control-plane client URL")
	f.StringVar(&cfg.ListenPeer, "listen-peer", mon.DefaultListenPeer, "control-plane peer URL")
	f.IntVar(&cfg.OSDs, "osds", 3, "storage daemons to run")
	f.IntVar(&cfg.OSDPort, "osd-port", 6800, "public port of osd.0 (osd.N uses +N); 0 picks free ports")
	f.IntVar(&cfg.ClusterPort, "cluster-port", 6900, "cluster port of osd.0 (osd.N uses +N); 0 picks free ports")
	f.StringVar(&cfg.AdvertiseHost, "advertise-host", "", "address clients on other machines use to reach the OSDs (default: the listen address)")
	f.StringVar(&cfg.Pool, "pool", "rbd", "default pool created on first start")
	f.Uint32Var(&cfg.PGNum, "pg-num", 64, "placement groups of the default pool")
	f.StringVar(&cfg.NBDListen, "nbd-listen", DefaultNBDListen, `NBD server address ("off": no NBD server)`)
	f.StringVar(&cfg.DemoImage, "demo-image", "rbd/demo", `image created on first start ("": none)`)
	f.StringVar(&cfg.DemoSize, "demo-size", "1G", "size of the demo image")
	f.BoolVar(&cfg.LogLargeWrites, "log-large-writes", false, logLargeWritesHelp)
	f.Uint64Var(&cfg.SnapshotBehind, "snapshot-behind", defaultSnapshotBehind, "each OSD's --snapshot-behind: "+snapshotBehindHelp)
	f.StringVar(&cfg.DebugAddr, "debug-addr", "", "serve Go's profiler (/debug/pprof) on this address, e.g. 127.0.0.1:6060")
	f.StringVar(&cfg.NFSImage, "nfs-image", "rbd/share", `image the NFS gateway serves, created on first start ("off": no gateway); needs root and the nbd module, else status says why it is not running`)
	f.StringVar(&cfg.NFSSize, "nfs-size", "10G", "size of that image when it is created (thin)")
	f.StringVar(&cfg.NFSExport, "nfs-export", "/data", "the path NFS clients mount")
	f.StringVar(&cfg.NFSListen, "nfs-listen", "127.0.0.1:2049", "NFS and MOUNT address of the gateway")
	f.StringVar(&cfg.NFSPortmap, "nfs-portmap-listen", "127.0.0.1:111", `portmapper address of the gateway ("": none)`)
	return cmd
}

func port(base, i int) string {
	if base == 0 {
		return "0"
	}
	return strconv.Itoa(base + i)
}

func runUp(ctx context.Context, cfg upConfig, g *globals, log *zap.Logger) error {
	if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
		return err
	}
	host := upHost()
	m, err := mon.New(mon.Config{DataDir: filepath.Join(cfg.Data, "mon"), ListenClient: cfg.ListenClient, ListenPeer: cfg.ListenPeer, Logger: log.Named("mon")})
	if err != nil {
		return err
	}
	// The control plane stops last, once every OSD has revoked its liveness
	// lease and the gateways have let go of their image locks; stopped
	// together, those revocations would fail and leave every OSD shown up
	// (at its old address) for a lease TTL after the next start.
	monCtx, stopMon := context.WithCancel(context.WithoutCancel(ctx))
	monDone := make(chan struct{})
	var monErr error
	monReady := make(chan []string, 1)
	go func() {
		defer close(monDone)
		monErr = m.Run(monCtx, func(urls []string) { monReady <- urls })
	}()
	defer func() {
		stopMon()
		<-monDone
	}()
	grp, gctx := errgroup.WithContext(ctx)
	// Shutdown goes in order: the gateways first, while the OSDs still
	// take their last writes (the NFS gateway unmounts ext4 through the
	// cluster: stopped together, its journal commit failed with EIO and
	// the stop hung on the kernel's retries), then the OSDs, then the
	// control plane (deferred above). stop does the first two.
	osdCtx, stopOSDs := context.WithCancel(context.WithoutCancel(ctx))
	defer stopOSDs()
	var gateways sync.WaitGroup
	stop := func() error {
		<-gctx.Done()
		gateways.Wait()
		stopOSDs()
		return grp.Wait()
	}
	// fail stops up, in that order, for err.
	fail := func(err error) error {
		grp.Go(func() error { return err })
		return stop()
	}
	grp.Go(func() error {
		select {
		case <-monDone:
			if err := monErr; err != nil {
				return err
			}
			return errors.New("the control plane stopped")
		case <-gctx.Done():
			return nil
		}
	})
	serveDebug(gctx, cfg.DebugAddr, log)
	var urls []string
	select {
	case urls = <-monReady:
	case <-gctx.Done():
		return stop()
	}

	// OSDs start one after another so that on a fresh cluster osd.N is
	// the one on DIR/osd.N.
	lines := make([]string, cfg.OSDs)
	for i := 0; i < cfg.OSDs; i++ {
		adv := ""
		if cfg.AdvertiseHost != "" {
			adv = net.JoinHostPort(cfg.AdvertiseHost, "0")
		}
		dir := filepath.Join(cfg.Data, fmt.Sprintf("osd.%d", i))
		ready := make(chan string, 1)
		var started atomic.Bool
		d, err := osd.NewDaemon(osd.Config{
			DataDir: dir, Host: host, Class: "hdd",
			Listen:        net.JoinHostPort("127.0.0.1", port(cfg.OSDPort, i)),
			ClusterListen: net.JoinHostPort("127.0.0.1", port(cfg.ClusterPort, i)),
			Advertise:     adv, EtcdEndpoints: urls, EtcdPrefix: g.etcdPrefix, Logger: log.Named(fmt.Sprintf("osd%d", i)),
			Store:          chunkstore.Config{LogLargeWrites: cfg.LogLargeWrites},
			SnapshotBehind: cfg.SnapshotBehind,
			Ready: func(id int32, pub, clu string) {
				started.Store(true)
				ready <- fmt.Sprintf("  %s  data %s  public %s  cluster %s", osdName(id), dir, pub, clu)
			},
		})
		if err != nil {
			return fail(err)
		}
		grp.Go(func() error {
			err := d.Run(osdCtx)
			if err == nil || osdCtx.Err() != nil || !started.Load() {
				return err // an OSD that cannot start stops up: a setup problem
			}
			// One OSD stopping (its disk failed, say) leaves the others
			// serving its PGs, degraded, as separate osd processes would:
			// stopping everything would turn one replica's failure into
			// an outage.
			log.Error("an OSD stopped; the cluster goes on without it (tsumiki status shows it down; fix the cause and restart tsumiki up to bring it back)",
				zap.String("data", dir), zap.Error(err))
			return nil
		})
		select {
		case lines[i] = <-ready:
		case <-gctx.Done():
			return stop()
		}
	}
	if err := ensurePool(gctx, urls, g.etcdPrefix, cfg, log); err != nil {
		log.Error("cannot create the default pool", zap.Error(err))
	}
	demo := ""
	if cfg.DemoImage != "" {
		created, err := ensureImage(gctx, urls, g.etcdPrefix, cfg.DemoImage, cfg.DemoSize, log)
		if err != nil {
			log.Error("cannot create the demo image", zap.String("image", cfg.DemoImage), zap.Error(err))
		} else {
			demo = cfg.DemoImage
			if created {
				log.Info("created the demo image", zap.String("image", demo), zap.String("size", cfg.DemoSize))
			}
		}
	}
	nbdAddr := ""
	if cfg.NBDListen != "off" && cfg.NBDListen != "" {
		ln, err := net.Listen("tcp", cfg.NBDListen)
		if err != nil {
			return fail(fmt.Errorf("--nbd-listen %s: %w (another tsumiki up? use --nbd-listen off or another port)", cfg.NBDListen, err))
		}
		nbdReady := make(chan string, 1)
		gateways.Add(1)
		grp.Go(func() error { // a failing NBD server stops up, as a failing OSD start does
			defer gateways.Done()
			return runNBDServe(gctx, urls, g.etcdPrefix, nbdServeConfig{}, ln, log.Named("nbd"), func(a string) { nbdReady <- a })
		})
		select {
		case nbdAddr = <-nbdReady:
		case <-gctx.Done():
			return stop()
		}
	}
	ann, closeAnn, err := dialAnnouncer(gctx, urls, g.etcdPrefix, log.Named("gateways"))
	if err != nil {
		return fail(fmt.Errorf("connect to the control plane: %w", err))
	}
	defer closeAnn()
	if nbdAddr != "" {
		ann.set(clustermap.Service{Kind: "nbd", Running: true, Addr: nbdAddr, Serves: "every image as POOL/NAME"})
	}
	nfsLine := startUpNFS(gctx, &gateways, cfg, g, urls, ann, log)
	fmt.Printf("tsumiki is up (data in %s)\n  control plane (etcd): %v\n", cfg.Data, urls)
	for _, l := range lines {
		fmt.Println(l)
	}
	fmt.Printf("  pool %q: size 3, failure domain osd\n", cfg.Pool)
	if nbdAddr != "" {
		fmt.Printf("  NBD server: %s (export names POOL/NAME)\n", nbdAddr)
	}
	if nfsLine != "" {
		fmt.Println(nfsLine)
	}
	fmt.Printf("Try: tsumiki status; tsumiki object put %s hello /etc/hostname; tsumiki object get %s hello -\n", cfg.Pool, cfg.Pool)
	if nbdAddr != "" && demo != "" {
		host, port, _ := net.SplitHostPort(nbdAddr)
		fmt.Printf("Attach image %s:\n  nbdinfo nbd://%s/%s\n  qemu-img info nbd://%s/%s\n  nbd-client %s %s /dev/nbd0 -N %s   (Linux, root, nbd module)\n",
			demo, nbdAddr, demo, nbdAddr, demo, host, port, demo)
	}
	fmt.Println("Ctrl-C stops everything.")
	err = stop()
	fmt.Println("tsumiki stopped")
	return err
}

// ensureImage creates image spec (POOL/NAME) of sizeArg on first start;
// created is false when it already exists.
func ensureImage(ctx context.Context, urls []string, prefix, spec, sizeArg string, log *zap.Logger) (created bool, err error) {
	pool, name, err := parseSpec(spec)
	if err != nil {
		return false, err
	}
	size, err := parseSize(sizeArg)
	if err != nil {
		return false, fmt.Errorf("size of %s: %w", spec, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cli, err := clustermap.Dial(ctx, urls, log)
	if err != nil {
		return false, err
	}
	defer cli.Close()
	objs, err := client.New(ctx, client.Config{Etcd: cli, EtcdPrefix: prefix, Logger: log})
	if err != nil {
		return false, err
	}
	defer objs.Close()
	st, err := image.NewStore(image.Config{Etcd: cli, Prefix: prefix, Objects: objs, Logger: log})
	if err != nil {
		return false, err
	}
	if _, err := st.Info(ctx, pool, name); err == nil {
		return false, nil // a restart: it is there (this needs no OSD)
	}
	_, err = st.Create(ctx, image.CreateOptions{Pool: pool, Name: name, Size: size})
	if errors.Is(err, image.ErrExists) {
		return false, nil
	}
	return err == nil, err
}

// ensurePool creates the default pool on first start.
func ensurePool(ctx context.Context, urls []string, prefix string, cfg upConfig, log *zap.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cli, err := clustermap.Dial(ctx, urls, log)
	if err != nil {
		return err
	}
	defer cli.Close()
	st := clustermap.NewStore(cli, prefix, log)
	m, err := st.Load(ctx)
	if err != nil {
		return err
	}
	if _, ok := m.PoolByName(cfg.Pool); ok || cfg.Pool == "" {
		return nil
	}
	size := min(3, cfg.OSDs)
	_, err = st.CreatePool(ctx, clustermap.Pool{Name: cfg.Pool, Size: size, MinSize: min(2, size), PGNum: cfg.PGNum, FailureDomain: "osd"})
	return err
}
