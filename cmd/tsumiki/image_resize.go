package main

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/tsumiki-storage/tsumiki/blockdev/image"
)

func newImageResizeCmd(g *globals) *cobra.Command {
	var size string
	var allowShrink bool
	cmd := &cobra.Command{
		Use:   "resize POOL/NAME --size SIZE [--allow-shrink]",
		Short: "grow an image (instant) or shrink it (--allow-shrink; discards the data past the new end)",
		Long: `Changes an image's size. Growing is instant and the new space reads as
zeros. Shrinking discards everything past the new size and is refused
unless --allow-shrink is given; shrink the filesystem on the image first.
The image must not be in use elsewhere (it takes the image's lock).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pool, name, n, err := specAndSize(cmd, args[0], size, "resize", "20G")
			if err != nil {
				return err
			}
			return withImages(cmd, g, 0, func(ctx context.Context, ic *imageConn) error {
				h, err := ic.store.Info(ctx, pool, name)
				if err != nil {
					return imageError(err, pool, name, "")
				}
				if n < h.Size && !allowShrink {
					return fmt.Errorf("shrinking %s from %s to %s discards everything past %s; shrink the filesystem on it first, then pass --allow-shrink",
						h.Spec(), formatSize(h.Size), formatSize(n), formatSize(n))
				}
				bar := newProgress("shrink "+h.Spec(), "objects")
				err = withOpenImage(ctx, ic.store, pool, name, image.OpenOptions{}, func(ctx context.Context, im *image.Image) error {
					return im.Resize(ctx, n, image.ResizeOptions{AllowShrink: allowShrink, Progress: bar.update})
				})
				bar.finish()
				if err != nil {
					return imageError(err, pool, name, lockHintWait+" (resize it where it is in use instead)")
				}
				h.Size = n
				return output(g, h, func(w *tabwriter.Writer) {
					fmt.Fprintf(w, "image %s resized to %s\n", h.Spec(), formatSize(n))
				})
			})
		},
	}
	cmd.Flags().StringVar(&size, "size", "", "new size, e.g. 20G (required)")
	cmd.Flags().BoolVar(&allowShrink, "allow-shrink", false, "allow a smaller size (discards the data past it)")
	return cmd
}
