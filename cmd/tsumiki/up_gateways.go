package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/tsumiki-storage/tsumiki/storage/clustermap"
)

// announcer keeps `tsumiki up`'s gateway announcements in the control
// plane (clustermap.Service), one per kind; set replaces a kind's.
type announcer struct {
	ctx   context.Context
	store *clustermap.Store
	host  string
	log   *zap.Logger

	mu     sync.Mutex // guards the following
	cancel map[string]context.CancelFunc
	closed bool // wait was called: set does nothing
	wg     sync.WaitGroup
}

func newAnnouncer(ctx context.Context, store *clustermap.Store, host string, log *zap.Logger) *announcer {
	return &announcer{ctx: ctx, store: store, host: host, log: log, cancel: map[string]context.CancelFunc{}}
}

// set announces svc (its Host is this machine) until the next set of its
// kind or the end of the announcer's context.
func (a *announcer) set(svc clustermap.Service) {
	svc.Host = a.host
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return
	}
	if c := a.cancel[svc.Kind]; c != nil {
		c()
	}
	ctx, cancel := context.WithCancel(a.ctx)
	a.cancel[svc.Kind] = cancel
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		if err := a.store.Announce(ctx, svc, 0); err != nil {
			a.log.Warn("cannot announce gateway", zap.String("kind", svc.Kind), zap.Error(err))
		}
	}()
}

// wait returns once every announcement ended (after the context); set
// does nothing afterwards.
func (a *announcer) wait() {
	a.mu.Lock()
	a.closed = true
	a.mu.Unlock()
	a.wg.Wait()
}

// startUpNFS starts `tsumiki up`'s NFS gateway for cfg.NFSImage where this
// host allows it, in the background (joined by wg), and returns the line
// `up` prints about it. Where the host lacks root or the nbd module, or the
// gateway fails later, it says why in the log and in its announcement
// (`tsumiki status`); the rest of the cluster keeps running.
func startUpNFS(ctx context.Context, wg *sync.WaitGroup, cfg upConfig, g *globals, urls []string, ann *announcer, log *zap.Logger) string {
	if cfg.NFSImage == "" || cfg.NFSImage == "off" {
		return ""
	}
	notRunning := func(reason string) string {
		log.Warn("NFS gateway not running", zap.String("reason", reason))
		ann.set(clustermap.Service{Kind: "nfs", Reason: reason})
		return "  NFS gateway: not running: " + reason
	}
	if _, _, err := parseSpec(cfg.NFSImage); err != nil {
		return notRunning(fmt.Sprintf("--nfs-image: %v", err))
	}
	if err := checkNFSImageHost(ctx, "ext4"); err != nil {
		return notRunning(err.Error())
	}
	if _, err := ensureImage(ctx, urls, g.etcdPrefix, cfg.NFSImage, cfg.NFSSize, log); err != nil {
		return notRunning(fmt.Sprintf("cannot create image %s: %v", cfg.NFSImage, err))
	}
	exports, err := nfsExports(nil, cfg.NFSExport)
	if err != nil {
		return notRunning(err.Error())
	}
	gw := *g
	gw.etcdEndpoints = strings.Join(urls, ",")
	serves := fmt.Sprintf("image %s as %s", cfg.NFSImage, cfg.NFSExport)
	wg.Add(1)
	go func() {
		defer wg.Done()
		nlog := log.Named("nfs")
		err := runNFSImage(ctx, &gw, cfg.NFSImage, "ext4", false, nlog, func(dir string) error {
			ann.set(clustermap.Service{Kind: "nfs", Running: true, Addr: cfg.NFSListen, Serves: serves})
			return serveNFSDir(ctx, dir, cfg.NFSExport, exports, cfg.NFSListen, cfg.NFSPortmap, nlog)
		})
		if err != nil && ctx.Err() == nil {
			notRunning(fmt.Sprintf("failed: %v", err))
		}
	}()
	host := strings.Split(cfg.NFSListen, ":")[0]
	return fmt.Sprintf("  NFS gateway: starting on %s, %s (mount -t nfs -o vers=3,nolock %s:%s /mnt)", cfg.NFSListen, serves, host, cfg.NFSExport)
}

// upHost is the host name gateways are announced under.
func upHost() string {
	host, _ := os.Hostname()
	if host == "" {
		host = "localhost"
	}
	return host
}

// dialAnnouncer connects the announcer's own control-plane client. When ctx
// ends, the announcements are revoked and the client closed at once, so
// that the embedded etcd, stopping at the same time, has no open stream to
// wait for; the returned function waits for that.
func dialAnnouncer(ctx context.Context, urls []string, prefix string, log *zap.Logger) (*announcer, func(), error) {
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cli, err := clustermap.Dial(dctx, urls, log)
	if err != nil {
		return nil, nil, err
	}
	ann := newAnnouncer(ctx, clustermap.NewStore(cli, prefix, log), upHost(), log)
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		<-ctx.Done()
		ann.wait()
		cli.Close()
	}()
	return ann, func() { <-closed }, nil
}
