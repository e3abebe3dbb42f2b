package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/tsumiki-storage/tsumiki/blockdev/image"
	"github.com/tsumiki-storage/tsumiki/blockdev/nbd"
	"github.com/tsumiki-storage/tsumiki/storage/client"
	"github.com/tsumiki-storage/tsumiki/storage/clustermap"
)

// DefaultNBDListen is where `nbd serve` and `up` listen by default.
const DefaultNBDListen = "127.0.0.1:10809"

// nbdServeConfig configures `tsumiki nbd serve`.
type nbdServeConfig struct {
	Listen    string
	ReadOnly  bool
	BreakLock bool
}

func newNBDCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "nbd",
		Short: "serve images over the NBD protocol",
	}
	var cfg nbdServeConfig
	serve := &cobra.Command{
		Use:   "serve [--listen ADDR]",
		Short: "export every image as POOL/NAME over NBD",
		Long: `Serves every image of the cluster over the NBD protocol; the export name is
POOL/NAME. A client that opens an image for writing takes the image's
exclusive lock through this server; a second server (or 'tsumiki map' elsewhere)
is then refused with the holder's name, unless it runs with --break-lock.

Attach an image from Linux:  nbd-client HOST PORT /dev/nbd0 -N rbd/demo
Inspect it:                  nbdinfo nbd://HOST:PORT/rbd/demo
Copy it:                     qemu-img convert -O qcow2 nbd://HOST:PORT/rbd/demo out.qcow2`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(g)
			if err != nil {
				return err
			}
			defer log.Sync()
			ln, err := net.Listen("tcp", cfg.Listen)
			if err != nil {
				return fmt.Errorf("--listen %s: %w", cfg.Listen, err)
			}
			return runNBDServe(cmd.Context(), endpoints(g), g.etcdPrefix, cfg, ln, log, func(addr string) {
				fmt.Printf("tsumiki nbd serving on %s (export names POOL/NAME)\n", addr)
			})
		},
	}
	f := serve.Flags()
	f.StringVar(&cfg.Listen, "listen", DefaultNBDListen, "address to listen on")
	f.BoolVar(&cfg.ReadOnly, "read-only", false, "export every image read-only (no locks taken)")
	f.BoolVar(&cfg.BreakLock, "break-lock", false, "take over images locked by another holder (fencing it) instead of refusing clients")
	cmd.AddCommand(serve)
	return cmd
}

// runNBDServe serves images on ln until ctx ends. ready, if set, is called
// once the server is connected to the cluster.
func runNBDServe(ctx context.Context, etcd []string, prefix string, cfg nbdServeConfig, ln net.Listener, log *zap.Logger, ready func(addr string)) error {
	defer ln.Close()
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cli, err := clustermap.Dial(dctx, etcd, log)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while still connecting
		}
		return err
	}
	defer cli.Close()
	objs, err := client.New(dctx, client.Config{Etcd: cli, EtcdPrefix: prefix, Logger: log.Named("client")})
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer objs.Close()
	st, err := image.NewStore(image.Config{Etcd: cli, Prefix: prefix, Objects: objs, Logger: log.Named("image"),
		Holder: image.Holder{Program: "tsumiki nbd serve", Address: ln.Addr().String()}})
	if err != nil {
		return err
	}
	// A gone holder is waited out within the handshake: 2 TTLs stays under
	// the handshake's timeout (30 s), so a client still waiting then gets
	// the refusal naming the holder, not a dropped connection.
	srv, err := nbd.NewServer(nbd.Config{Opener: newImageExports(ctx, st, log.Named("exports"), cfg.BreakLock, 2*image.DefaultLockTTL),
		Logger: log.Named("nbd"), ReadOnly: cfg.ReadOnly})
	if err != nil {
		return err
	}
	if ready != nil {
		ready(ln.Addr().String())
	}
	err = srv.Serve(ctx, ln)
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}
