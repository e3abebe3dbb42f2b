package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tsumiki-storage/tsumiki/blockdev/image"
	"github.com/tsumiki-storage/tsumiki/blockdev/stripe"
)

// layoutFlags are the striping flags of create and import.
type layoutFlags struct {
	objectSize, stripeUnit string
	stripeCount            int64
}

func (f *layoutFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.objectSize, "object-size", "4M", "size of each object: a power of two from 4K to 32M")
	fl.StringVar(&f.stripeUnit, "stripe-unit", "", "bytes written to one object before the next (default: the object size, no striping)")
	fl.Int64Var(&f.stripeCount, "stripe-count", 1, "objects a stripe spreads over (1-1024)")
}

// layout parses the flags into a layout (defaults applied) and validates it.
func (f *layoutFlags) layout() (stripe.Layout, error) {
	var l stripe.Layout
	var err error
	if l.ObjectSize, err = parseSize(f.objectSize); err != nil {
		return l, fmt.Errorf("--object-size: %w", err)
	}
	if f.stripeUnit != "" {
		if l.StripeUnit, err = parseSize(f.stripeUnit); err != nil {
			return l, fmt.Errorf("--stripe-unit: %w", err)
		}
		if l.StripeUnit == 0 {
			return l, fmt.Errorf("--stripe-unit 0: give at least 4K, or leave it out for no striping")
		}
	}
	if f.stripeCount < 1 {
		return l, fmt.Errorf("--stripe-count %d: give 1 or more (1: no striping)", f.stripeCount)
	}
	l.StripeCount = f.stripeCount
	if l.ObjectSize == 0 {
		return l, fmt.Errorf("--object-size 0: give a power of two from 4K to 32M, e.g. 4M")
	}
	l = l.WithDefaults()
	if err := l.Validate(); err != nil {
		return l, fmt.Errorf("--object-size/--stripe-unit/--stripe-count: %w", err)
	}
	return l, nil
}

func newImageCreateCmd(g *globals) *cobra.Command {
	var size string
	var lf layoutFlags
	cmd := &cobra.Command{
		Use:   "create POOL/NAME --size SIZE",
		Short: "create a thin image (sizes take K, M, G, T suffixes)",
		Long: `Creates an empty image of --size bytes (a multiple of 512; K, M, G, T
suffixes are binary). Nothing is written until the image is: unwritten
ranges read as zeros and take no space. --object-size, --stripe-unit and
--stripe-count set the striping, as in RBD.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pool, name, n, err := specAndSize(cmd, args[0], size, "create", "10G")
			if err != nil {
				return err
			}
			l, err := lf.layout()
			if err != nil {
				return err
			}
			return withImages(cmd, g, 60*time.Second, func(ctx context.Context, ic *imageConn) error {
				h, err := ic.store.Create(ctx, image.CreateOptions{Pool: pool, Name: name, Size: n, Layout: l})
				if err != nil {
					return imageError(err, pool, name, "")
				}
				return output(g, h, func(w *tabwriter.Writer) {
					fmt.Fprintf(w, "image %s created: %s, %s\n", h.Spec(), formatSize(h.Size), layoutText(h.Layout()))
				})
			})
		},
	}
	cmd.Flags().StringVar(&size, "size", "", "image size, e.g. 10G (required)")
	lf.add(cmd)
	return cmd
}

// layoutText is "object size 4 MiB" or "object size 4 MiB, stripe unit 64 KiB x 8".
func layoutText(l stripe.Layout) string {
	s := "object size " + formatSize(l.ObjectSize)
	if l.StripeCount > 1 || l.StripeUnit != l.ObjectSize {
		s += fmt.Sprintf(", stripe unit %s x %d", formatSize(l.StripeUnit), l.StripeCount)
	}
	return s
}

// stripingText is "64 KiB x 8" or "-".
func stripingText(l stripe.Layout) string {
	if l.StripeCount == 1 && l.StripeUnit == l.ObjectSize {
		return "-"
	}
	return fmt.Sprintf("%s x %d", formatSize(l.StripeUnit), l.StripeCount)
}
