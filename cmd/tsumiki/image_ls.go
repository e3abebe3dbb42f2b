package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tsumiki-storage/tsumiki/blockdev/image"
)

// imageRow is one image in `image ls -l` and `image info`.
type imageRow struct {
	image.Header
	Lock *image.Holder `json:"lock"` // nil: not locked
}

func newImageLsCmd(g *globals) *cobra.Command {
	var long bool
	cmd := &cobra.Command{
		Use:   "ls [POOL]",
		Short: "list images (of one pool, or of all); -l for size, layout and lock",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pool := ""
			if len(args) == 1 {
				pool = args[0]
				if err := image.CheckName("pool", pool); err != nil {
					return err
				}
			}
			return withImages(cmd, g, 60*time.Second, func(ctx context.Context, ic *imageConn) error {
				if _, ok := ic.objs.Map().PoolByName(pool); pool != "" && !ok {
					return fmt.Errorf("pool %q does not exist (see `tsumiki pool ls`)", pool)
				}
				hs, err := ic.store.List(ctx, pool)
				if err != nil {
					return err
				}
				rows := make([]imageRow, len(hs))
				for i, h := range hs {
					rows[i].Header = h
					if long {
						if rows[i].Lock, err = lockOf(ctx, ic, h); err != nil {
							return err
						}
					}
				}
				var js any = hs // without -l, the lock is not looked up: leave it out
				if long {
					js = rows
				}
				return output(g, js, func(w *tabwriter.Writer) {
					name := func(h image.Header) string {
						if pool != "" {
							return h.Name
						}
						return h.Spec()
					}
					if !long {
						for _, r := range rows {
							fmt.Fprintln(w, name(r.Header))
						}
						return
					}
					fmt.Fprintln(w, "NAME\tSIZE\tOBJECT_SIZE\tSTRIPING\tLOCKED_BY\tCREATED")
					for _, r := range rows {
						lock := "-"
						if r.Lock != nil {
							lock = fmt.Sprintf("%s:%d", r.Lock.Host, r.Lock.PID)
						}
						fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", name(r.Header), formatSize(r.Size), formatSize(r.ObjectSize),
							stripingText(r.Layout()), lock, r.Created.Local().Format("2006-01-02 15:04"))
					}
				})
			})
		},
	}
	cmd.Flags().BoolVarP(&long, "long", "l", false, "show size, layout, lock holder and creation time")
	return cmd
}

// lockOf returns the holder of h's lock, or nil.
func lockOf(ctx context.Context, ic *imageConn, h image.Header) (*image.Holder, error) {
	holder, ok, err := ic.store.LockHolder(ctx, h.Pool, h.Name)
	if err != nil || !ok {
		return nil, err
	}
	return &holder, nil
}

func newImageInfoCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "info POOL/NAME",
		Short: "show an image's size, layout, id, features and lock holder",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pool, name, err := parseSpec(args[0])
			if err != nil {
				return err
			}
			return withImages(cmd, g, 30*time.Second, func(ctx context.Context, ic *imageConn) error {
				h, err := ic.store.Info(ctx, pool, name)
				if err != nil {
					return imageError(err, pool, name, "")
				}
				r := imageRow{Header: h}
				if r.Lock, err = lockOf(ctx, ic, h); err != nil {
					return err
				}
				return output(g, r, func(w *tabwriter.Writer) {
					l := h.Layout()
					fmt.Fprintf(w, "image %s\n", h.Spec())
					fmt.Fprintf(w, "  id:\t%s\n", h.ID)
					fmt.Fprintf(w, "  size:\t%s (%d bytes) in up to %d objects\n", formatSize(h.Size), h.Size, h.ObjectCount())
					fmt.Fprintf(w, "  object size:\t%s\n", formatSize(l.ObjectSize))
					fmt.Fprintf(w, "  striping:\tstripe unit %s, stripe count %d\n", formatSize(l.StripeUnit), l.StripeCount)
					fmt.Fprintf(w, "  data objects:\t%s/%s.<16 hex digits>\n", h.Pool, h.ID)
					fmt.Fprintf(w, "  features:\t%s\n", strings.Join(h.Features, ", "))
					fmt.Fprintf(w, "  created:\t%s\n", h.Created.Local().Format(time.RFC3339))
					if r.Lock == nil {
						fmt.Fprintf(w, "  lock:\tnone\n")
					} else {
						fmt.Fprintf(w, "  lock:\theld by %v\n", *r.Lock)
					}
				})
			})
		},
	}
}
