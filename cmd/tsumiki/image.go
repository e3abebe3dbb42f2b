package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/sync/errgroup"

	"github.com/tsumiki-storage/tsumiki/blockdev/image"
	"github.com/tsumiki-storage/tsumiki/storage/client"
	"github.com/tsumiki-storage/tsumiki/storage/clustermap"
)

func newImageCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "create, list, resize, remove, export, import and benchmark block images",
		Long: `Block images are thin, striped byte arrays stored as objects in a pool
(like RBD images). An image is named POOL/NAME, e.g. rbd/vm1. Writers hold an
exclusive lock on the image; a second writer is refused and told who has it.`,
	}
	cmd.AddCommand(newImageCreateCmd(g), newImageLsCmd(g), newImageInfoCmd(g), newImageResizeCmd(g),
		newImageRmCmd(g), newImageDuCmd(g), newImageExportCmd(g), newImageImportCmd(g), newImageBenchCmd(g))
	return cmd
}

// imageConn is what the image verbs work with: the control plane, the
// cluster and an image store over both.
type imageConn struct {
	etcd  *clientv3.Client
	objs  *client.Client
	store *image.Store
}

// withImages connects for an image verb and runs fn. d bounds the whole
// operation; 0 leaves it unbounded (long copies; Ctrl-C stops them).
func withImages(cmd *cobra.Command, g *globals, d time.Duration, fn func(ctx context.Context, ic *imageConn) error) error {
	log, err := adminLogger(g)
	if err != nil {
		return err
	}
	dctx, cancel := context.WithTimeout(cmd.Context(), 15*time.Second)
	defer cancel()
	cli, err := clustermap.Dial(dctx, endpoints(g), log)
	if err != nil {
		return err
	}
	defer cli.Close()
	objs, err := client.New(dctx, client.Config{Etcd: cli, EtcdPrefix: g.etcdPrefix, Logger: log})
	if err != nil {
		return err
	}
	defer objs.Close()
	st, err := image.NewStore(image.Config{Etcd: cli, Prefix: g.etcdPrefix, Objects: objs, Logger: log,
		Holder: image.Holder{Program: cmd.CommandPath()}})
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	if d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	return fn(ctx, &imageConn{etcd: cli, objs: objs, store: st})
}

// withOpenImage opens pool/name, keeps its lock alive (Run) while fn runs,
// and closes it. Losing the lock ends fn's context; the error then says so.
func withOpenImage(ctx context.Context, st *image.Store, pool, name string, opts image.OpenOptions, fn func(ctx context.Context, im *image.Image) error) error {
	im, err := st.Open(ctx, pool, name, opts)
	if err != nil {
		return err
	}
	grp, gctx := errgroup.WithContext(ctx)
	runCtx, stopRun := context.WithCancel(gctx)
	grp.Go(func() error { return im.Run(runCtx) })
	grp.Go(func() error {
		defer stopRun()
		return fn(gctx, im)
	})
	err = grp.Wait()
	if cerr := im.Close(); err == nil {
		err = cerr
	}
	return err
}

// parseSpec splits "POOL/NAME".
func parseSpec(arg string) (pool, name string, err error) {
	pool, name, ok := strings.Cut(arg, "/")
	if !ok || strings.Contains(name, "/") {
		return "", "", fmt.Errorf("%q: give the image as POOL/NAME, e.g. rbd/vm1 (see `tsumiki image ls`)", arg)
	}
	if err := errors.Join(image.CheckName("pool", pool), image.CheckName("image", name)); err != nil {
		return "", "", fmt.Errorf("%q: %w", arg, err)
	}
	return pool, name, nil
}

// imageError turns errors of the image verbs into messages that say what
// to do. lockHint is what to suggest when the image is locked.
func imageError(err error, pool, name, lockHint string) error {
	spec := pool + "/" + name
	var le *image.LockedError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &le):
		return fmt.Errorf("image %s is in use: locked by %v; %s", spec, le.Holder, lockHint)
	case errors.Is(err, image.ErrNotFound):
		return fmt.Errorf("image %s does not exist (see `tsumiki image ls %s`)", spec, pool)
	case errors.Is(err, image.ErrExists):
		return fmt.Errorf("image %s already exists: choose another name, or remove it first with `tsumiki image rm %s`", spec, spec)
	case errors.Is(err, client.ErrNoPool):
		return fmt.Errorf("pool %q does not exist (see `tsumiki pool ls`; create it with `tsumiki pool create %s`)", pool, pool)
	case errors.Is(err, image.ErrFenced):
		return fmt.Errorf("lost the lock on image %s, so further writes were refused: someone broke it (tsumiki image rm --force?); see `tsumiki image info %s`: %w", spec, spec, err)
	case errors.Is(err, client.ErrUnavailable):
		return fmt.Errorf("the cluster could not serve image %s in time; check `tsumiki status` and retry: %w", spec, err)
	}
	return err
}

// lockHintWait is the usual advice for a locked image.
const lockHintWait = "stop that program (or unmap the image on that host) and try again"
