package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/tsumiki-storage/tsumiki/storage/client"
)

// objectMap is `osd map`'s answer (like `ceph osd map POOL OBJECT`).
type objectMap struct {
	Pool   string  `json:"pool"`
	Object string  `json:"object"`
	PG     string  `json:"pg"`
	Up     []int32 `json:"up"`
	Leader int32   `json:"leader"`
}

func newOSDMapCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "map POOL OBJECT",
		Short: "show which PG and OSDs hold an object, and the PG's leader",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withClient(cmd, g, 20*time.Second, func(ctx context.Context, c *client.Client) error {
				poolID, pg, up, err := c.Locate(ctx, args[0], args[1])
				if err != nil {
					return objectError(err, args[0], args[1])
				}
				om := objectMap{Pool: args[0], Object: args[1], PG: fmt.Sprintf("%d.%x", poolID, pg), Up: up, Leader: -1}
				states, _ := c.OSDStates(ctx)
				for _, r := range pgRows(c.Map(), states) {
					if r.PG == om.PG {
						om.Leader = r.Leader
					}
				}
				return output(g, om, func(w *tabwriter.Writer) {
					fmt.Fprintf(w, "pool %s object %q -> pg %s -> up %v leader %s\n", om.Pool, om.Object, om.PG, om.Up, osdName(om.Leader))
				})
			})
		},
	}
}

// parsePGID reads "POOL.PGHEX" as printed by `pg ls`.
func parsePGID(s string) (pool, pg uint32, err error) {
	a, b, ok := strings.Cut(s, ".")
	p, err1 := strconv.ParseUint(a, 10, 32)
	n, err2 := strconv.ParseUint(b, 16, 32)
	if !ok || err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("%q is not a PG id: use POOLID.PG as `tsumiki pg ls` prints it, e.g. 1.1f", s)
	}
	return uint32(p), uint32(n), nil
}

func newPGLeadCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "lead PGID OSD",
		Short: "move a PG's leadership to one of its replicas (set noout first, or it returns to the primary after 30 s)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			pool, pg, err := parsePGID(args[0])
			if err != nil {
				return err
			}
			id, err := parseOSDID(args[1])
			if err != nil {
				return err
			}
			return withClient(cmd, g, 30*time.Second, func(_ context.Context, c *client.Client) error {
				if _, ok := c.Map().PoolByID(pool); !ok {
					return fmt.Errorf("no pool with id %d (see `tsumiki pool ls`)", pool)
				}
				ctx, cancel := opContext(cmd, 20*time.Second)
				defer cancel()
				if err := c.TransferLeader(ctx, pool, pg, id); err != nil {
					return err
				}
				fmt.Printf("pg %s is now led by %s\n", args[0], osdName(id))
				return nil
			})
		},
	}
}
