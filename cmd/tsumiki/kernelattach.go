package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/tsumiki-storage/tsumiki/blockdev/attach"
	"github.com/tsumiki-storage/tsumiki/blockdev/image"
	"github.com/tsumiki-storage/tsumiki/blockdev/nbd"
	"github.com/tsumiki-storage/tsumiki/storage/client"
	"github.com/tsumiki-storage/tsumiki/storage/clustermap"
)

// attachOpts say how attachKernel attaches an image.
type attachOpts struct {
	Device    string        // /dev/nbdX to use; "" = the first free one
	ReadOnly  bool          // no lock taken
	BreakLock bool          // take the lock over from its holder
	Timeout   time.Duration // kernel request timeout
	Program   string        // how the lock names this process
	// WaitGone is how long to wait for the lock of a holder on this host
	// whose process is gone (killed with SIGKILL: its lease outlives it
	// by up to image.DefaultLockTTL) to expire; 0: refuse at once.
	WaitGone time.Duration
}

// kernelImage is an image attached through the kernel's NBD client: this
// process serves the device until Detach.
type kernelImage struct {
	Dev     string
	images  *image.Store // the store the image was opened from
	spec    string
	log     *zap.Logger
	gone    chan error // the kernel's NBD_DO_IT returned (device disconnected)
	served  chan error // the server side of the socket pair ended
	stop    context.CancelFunc
	cleanup []func() // cluster connections, in reverse order of opening
}

// attachKernel connects to the cluster, opens spec for a kernel client
// (taking its exclusive lock unless read-only) and attaches it as a
// /dev/nbdX served by this process. Errors say what to do.
func attachKernel(ctx context.Context, g *globals, spec string, o attachOpts, log *zap.Logger) (_ *kernelImage, err error) {
	k := &kernelImage{spec: spec, log: log, gone: make(chan error, 1), served: make(chan error, 1)}
	defer func() {
		if err != nil {
			k.release() // the connections opened so far
		}
	}()
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cli, err := clustermap.Dial(dctx, endpoints(g), log)
	if err != nil {
		return nil, err
	}
	k.cleanup = append(k.cleanup, func() { cli.Close() })
	objs, err := client.New(dctx, client.Config{Etcd: cli, EtcdPrefix: g.etcdPrefix, Logger: log.Named("client")})
	if err != nil {
		return nil, err
	}
	k.cleanup = append(k.cleanup, func() { objs.Close() })
	host, _ := os.Hostname()
	st, err := image.NewStore(image.Config{Etcd: cli, Prefix: g.etcdPrefix, Objects: objs, Logger: log.Named("image"),
		Holder: image.Holder{Program: o.Program, Address: host}})
	if err != nil {
		return nil, err
	}
	k.images = st
	// The exports live as long as the attachment, not as ctx: the kernel
	// must be detached before the image is closed.
	life, endLife := context.WithCancel(context.Background())
	k.cleanup = append(k.cleanup, endLife)
	srv, err := nbd.NewServer(nbd.Config{Opener: newImageExports(life, st, log, o.BreakLock, 0), Logger: log.Named("nbd"), ReadOnly: o.ReadOnly})
	if err != nil {
		return nil, err
	}
	if o.WaitGone > 0 && !o.ReadOnly && !o.BreakLock {
		if err := waitGoneHolder(ctx, st, spec, host, o.WaitGone, log, nil); err != nil {
			return nil, err
		}
	}
	ks, err := srv.OpenKernel(dctx, spec)
	if err != nil {
		return nil, imageMapError(err, spec)
	}
	k.Dev = o.Device
	if k.Dev == "" {
		if k.Dev, err = attach.FreeDevice(); err != nil {
			ks.Close()
			return nil, err
		}
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		ks.Close()
		return nil, err
	}
	kernelEnd := os.NewFile(uintptr(fds[0]), "nbd-kernel")
	defer kernelEnd.Close() // the kernel holds its own reference once attached
	ourFile := os.NewFile(uintptr(fds[1]), "nbd-server")
	ours, err := net.FileConn(ourFile)
	ourFile.Close()
	if err != nil {
		ks.Close()
		return nil, err
	}
	sctx, stop := context.WithCancel(life)
	k.stop = stop
	go func() { k.served <- ks.Serve(sctx, ours) }()
	wait, err := attach.Attach(k.Dev, kernelEnd, attach.Params{Size: ks.Size(), BlockSize: ks.BlockSize(),
		Flags: uint64(ks.Flags()), Timeout: o.Timeout})
	if err != nil {
		stop()
		<-k.served
		k.stop = nil
		return nil, err
	}
	go func() { k.gone <- wait() }()
	log.Info("attached", zap.String("image", spec), zap.String("device", k.Dev))
	return k, nil
}

// Disconnected delivers, once, why the kernel let go of the device
// (nil for a clean disconnect, e.g. `tsumiki unmap`).
func (k *kernelImage) Disconnected() <-chan error { return k.gone }

// Detach disconnects the device unless the kernel already did (gone tells
// Detach that Disconnected was received), stops serving it and closes the
// image (releasing its lock) and the cluster connections.
func (k *kernelImage) Detach(gone bool) error {
	var err error
	if !gone {
		if derr := attach.Detach(k.Dev, 30*time.Second); derr != nil {
			k.log.Error("cannot disconnect the device", zap.String("device", k.Dev), zap.Error(derr))
		}
		err = <-k.gone
	}
	k.stop()
	if serr := <-k.served; err == nil && serr != nil && !errors.Is(serr, context.Canceled) {
		err = serr
	}
	k.release()
	k.log.Info("detached; image lock released", zap.String("image", k.spec), zap.String("device", k.Dev))
	if err != nil {
		return fmt.Errorf("detach %s: %w", k.Dev, err)
	}
	return nil
}

// waitGoneHolder waits, at most max, while spec is locked by a process of
// this host that no longer exists: a gateway killed with SIGKILL, or by a
// power cut, cannot release its lock, which then lasts until its lease
// expires. Waiting for the expiry (rather than breaking the lock) is safe
// even when the pid test is wrong (a holder in another pid namespace with
// the same host name): a live holder renews its lease, and the open that
// follows is refused as usual. Any other holder, or none, returns at once; so do
// errors reading the lock (the open reports them).
//
// also, if not nil, names further holders to wait for in the same way
// (the NBD exports' own fenced open, see imageExports.Open).
func waitGoneHolder(ctx context.Context, st *image.Store, spec, host string, max time.Duration, log *zap.Logger, also func(image.Holder) bool) error {
	pool, name, err := parseSpec(spec)
	if err != nil {
		return err
	}
	start := time.Now()
	for waited := false; ; waited = true {
		h, held, err := st.LockHolder(ctx, pool, name)
		if err != nil || !held || !(holderGone(h, host, image.ThisBoot()) || also != nil && also(h)) {
			if waited && err == nil && !held {
				log.Info("the gone holder's lock expired", zap.String("image", spec),
					zap.Duration("waited", time.Since(start).Round(100*time.Millisecond)))
			}
			return nil
		}
		if !waited {
			log.Warn("image locked by a process of this host that is gone (killed?), or by this process's own open that lost its lease: waiting for its lease to expire",
				zap.String("image", spec), zap.String("holder", h.String()), zap.Duration("at most", max))
		}
		if time.Since(start) > max {
			return nil // the open says who holds it
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// holderGone reports whether h, a lock holder, was a process of this host
// (named host, booted as boot) that no longer runs: its boot was another
// (the host restarted, and its PID may name another process now) or its
// PID names no process.
func holderGone(h image.Holder, host, boot string) bool {
	if h.Host != host {
		return false
	}
	if h.Boot != "" && boot != "" && h.Boot != boot {
		return true // whatever its PID names now: the same script run at every boot gets the same PIDs
	}
	return h.PID != os.Getpid() && processGone(h.PID)
}

// processGone reports whether no process (or thread) pid exists here.
func processGone(pid int) bool {
	return pid > 0 && errors.Is(unix.Kill(pid, 0), unix.ESRCH)
}

func (k *kernelImage) release() {
	for i := len(k.cleanup) - 1; i >= 0; i-- {
		k.cleanup[i]()
	}
	k.cleanup = nil
}
