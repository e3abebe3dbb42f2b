package main

import (
	"context"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tsumiki-storage/tsumiki/blockdev/image"
)

func newImageRmCmd(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "rm POOL/NAME [--force]",
		Short: "remove an image and all its data (refused while it is in use, unless --force)",
		Long: `Deletes every data object of the image, then the image. An image that is
in use (locked by another program) is refused, naming the holder; --force
breaks the lock first: the holder is fenced (its further IO fails) and rm
waits out its lease (about 10s) before deleting anything.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pool, name, err := parseSpec(args[0])
			if err != nil {
				return err
			}
			return withImages(cmd, g, 0, func(ctx context.Context, ic *imageConn) error {
				bar := newProgress("rm "+pool+"/"+name, "objects")
				err := ic.store.Remove(ctx, pool, name, image.RemoveOptions{
					BreakLock: force,
					OnBreak: func(old image.Holder, wait time.Duration) {
						fmt.Fprintf(os.Stderr, "broke the lock of %v; waiting %v for it to stop writing\n", old, wait)
					},
					Progress: bar.update,
				})
				bar.finish()
				removed := bar.count()
				if err != nil {
					return imageError(err, pool, name, lockHintWait+", or pass --force to break the lock (the holder is fenced: its further writes fail)")
				}
				return output(g, map[string]any{"removed": pool + "/" + name, "objects": removed}, func(w *tabwriter.Writer) {
					fmt.Fprintf(w, "image %s/%s removed (%d data objects)\n", pool, name, removed)
				})
			})
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "break the image's lock if another program holds it (fences that program)")
	return cmd
}
