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

// duRow is one line of `image du`.
type duRow struct {
	Image string `json:"image"`
	image.Usage
}

func newImageDuCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "du [POOL/NAME | POOL]",
		Short: "show provisioned and used space of one image, a pool's images or all images",
		Long: `Provisioned is the image size; used is the bytes its data objects hold
(up to the last write in each object; ranges zeroed inside an object still
count).`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var pool, name string
			if len(args) == 1 {
				if strings.Contains(args[0], "/") {
					var err error
					if pool, name, err = parseSpec(args[0]); err != nil {
						return err
					}
				} else if pool = args[0]; image.CheckName("pool", pool) != nil {
					return image.CheckName("pool", pool)
				}
			}
			return withImages(cmd, g, 10*time.Minute, func(ctx context.Context, ic *imageConn) error {
				var hs []image.Header
				if name != "" {
					hs = []image.Header{{Pool: pool, Name: name}}
				} else {
					if _, ok := ic.objs.Map().PoolByName(pool); pool != "" && !ok {
						return fmt.Errorf("pool %q does not exist (see `tsumiki pool ls`)", pool)
					}
					var err error
					if hs, err = ic.store.List(ctx, pool); err != nil {
						return err
					}
				}
				rows := []duRow{}
				var total image.Usage
				for _, h := range hs {
					_, u, err := ic.store.Du(ctx, h.Pool, h.Name)
					if err != nil {
						return imageError(err, h.Pool, h.Name, "")
					}
					rows = append(rows, duRow{Image: h.Spec(), Usage: u})
					total.Provisioned += u.Provisioned
					total.Used += u.Used
					total.Objects += u.Objects
				}
				return output(g, rows, func(w *tabwriter.Writer) {
					fmt.Fprintln(w, "NAME\tPROVISIONED\tUSED\tOBJECTS")
					for _, r := range rows {
						fmt.Fprintf(w, "%s\t%s\t%s\t%d\n", r.Image, formatSize(r.Provisioned), formatSize(r.Used), r.Objects)
					}
					if len(rows) > 1 {
						fmt.Fprintf(w, "<TOTAL>\t%s\t%s\t%d\n", formatSize(total.Provisioned), formatSize(total.Used), total.Objects)
					}
				})
			})
		},
	}
}
