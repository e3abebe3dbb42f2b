package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tsumiki-storage/tsumiki/storage/client"
	"github.com/tsumiki-storage/tsumiki/storage/clustermap"
)

func newPoolCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "pool", Short: "create, list and tune pools"}
	cmd.AddCommand(newPoolCreateCmd(g), newPoolLsCmd(g), newPoolGetCmd(g), newPoolSetCmd(g))
	return cmd
}

func newPoolCreateCmd(g *globals) *cobra.Command {
	var p clustermap.Pool
	var pgNum uint32
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "create a replicated pool",
		Long: `Creates a pool. Each object lands in one of --pg-num placement groups; each
group is replicated --size times on distinct failure domains (hosts by
default) of the chosen device class. Writes need --min-size replicas.
A pool that cannot be placed on the current OSDs is refused, saying why.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p.Name, p.PGNum = args[0], pgNum
			return withClient(cmd, g, 15*time.Second, func(ctx context.Context, c *client.Client) error {
				created, err := c.Maps().CreatePool(ctx, p)
				if err != nil {
					return err
				}
				return output(g, created, func(w *tabwriter.Writer) {
					fmt.Fprintf(w, "pool %q created (id %d, size %d, min_size %d, pg_num %d, failure domain %s)\n",
						created.Name, created.ID, created.Size, created.MinSize, created.PGNum, created.FailureDomain)
				})
			})
		},
	}
	f := cmd.Flags()
	f.IntVar(&p.Size, "size", 3, "replicas per object")
	f.IntVar(&p.MinSize, "min-size", 2, "replicas that must be up to accept writes")
	f.Uint32Var(&pgNum, "pg-num", 64, "placement groups")
	f.StringVar(&p.Class, "device-class", "", "only OSDs of this class (hdd, ssd); empty: any")
	f.StringVar(&p.FailureDomain, "failure-domain", "host", "replicas never share one of these: host or osd")
	return cmd
}

func poolRows(w *tabwriter.Writer, pools []clustermap.Pool) {
	fmt.Fprintln(w, "ID\tNAME\tSIZE\tMIN_SIZE\tPG_NUM\tCLASS\tFAILURE_DOMAIN")
	for _, p := range pools {
		class := p.Class
		if class == "" {
			class = "any"
		}
		fmt.Fprintf(w, "%d\t%s\t%d\t%d\t%d\t%s\t%s\n", p.ID, p.Name, p.Size, p.MinSize, p.PGNum, class, p.FailureDomain)
	}
}

func newPoolLsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "ls",
		Short: "list pools",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withClient(cmd, g, 30*time.Second, func(_ context.Context, c *client.Client) error {
				pools := c.Map().Pools
				return output(g, pools, func(w *tabwriter.Writer) { poolRows(w, pools) })
			})
		},
	}
}

func poolValue(p clustermap.Pool, key string) (any, error) {
	switch key {
	case "size":
		return p.Size, nil
	case "min_size":
		return p.MinSize, nil
	case "pg_num":
		return p.PGNum, nil
	case "device_class":
		return p.Class, nil
	case "failure_domain":
		return p.FailureDomain, nil
	case "all":
		return p, nil
	}
	return nil, fmt.Errorf("unknown pool key %q: use size, min_size, pg_num, device_class, failure_domain or all", key)
}

func newPoolGetCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "get NAME KEY",
		Short: "show a pool setting (size, min_size, pg_num, device_class, failure_domain, all)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withClient(cmd, g, 30*time.Second, func(_ context.Context, c *client.Client) error {
				p, ok := c.Map().PoolByName(args[0])
				if !ok {
					return fmt.Errorf("no pool %q (see `tsumiki pool ls`)", args[0])
				}
				v, err := poolValue(p, args[1])
				if err != nil {
					return err
				}
				return output(g, map[string]any{args[1]: v}, func(w *tabwriter.Writer) {
					if args[1] == "all" {
						poolRows(w, []clustermap.Pool{p})
						return
					}
					fmt.Fprintf(w, "%s: %v\n", args[1], v)
				})
			})
		},
	}
}

func newPoolSetCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "set NAME KEY VALUE",
		Short: "change a pool setting (min_size; size and pg_num are fixed for now)",
		Args:  cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withClient(cmd, g, 15*time.Second, func(ctx context.Context, c *client.Client) error {
				p, err := c.Maps().SetPool(ctx, args[0], args[1], args[2])
				if err != nil {
					return err
				}
				fmt.Printf("set pool %s %s = %s\n", p.Name, args[1], args[2])
				return nil
			})
		},
	}
}
