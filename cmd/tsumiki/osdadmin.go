package main

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tsumiki-storage/tsumiki/storage/client"
	"github.com/tsumiki-storage/tsumiki/storage/clustermap"
)

func upDown(up bool) string {
	if up {
		return "up"
	}
	return "down"
}

func inOut(in bool) string {
	if in {
		return "in"
	}
	return "out"
}

func newOSDLsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "ls",
		Short: "list OSDs with host, class, weight, state and addresses",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withClient(cmd, g, 30*time.Second, func(_ context.Context, c *client.Client) error {
				m := c.Map()
				return output(g, m.OSDs, func(w *tabwriter.Writer) {
					fmt.Fprintln(w, "ID\tHOST\tCLASS\tWEIGHT\tSTATUS\tPUBLIC\tCLUSTER")
					for _, o := range m.OSDs {
						fmt.Fprintf(w, "%s\t%s\t%s\t%.3f\t%s,%s\t%s\t%s\n", osdName(o.ID), o.Host, o.Class, o.Weight, upDown(o.Up), inOut(o.In), o.PublicAddr, o.ClusterAddr)
					}
				})
			})
		},
	}
}

type treeHost struct {
	Host   string           `json:"host"`
	Weight float64          `json:"weight"`
	OSDs   []clustermap.OSD `json:"osds"`
}

func newOSDTreeCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "tree",
		Short: "show OSDs grouped by host (the failure domains)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withClient(cmd, g, 30*time.Second, func(_ context.Context, c *client.Client) error {
				byHost := map[string]*treeHost{}
				var hosts []*treeHost
				for _, o := range c.Map().OSDs {
					h := byHost[o.Host]
					if h == nil {
						h = &treeHost{Host: o.Host}
						byHost[o.Host] = h
						hosts = append(hosts, h)
					}
					h.OSDs = append(h.OSDs, o)
					if o.In {
						h.Weight += o.Weight
					}
				}
				sort.Slice(hosts, func(i, j int) bool { return hosts[i].Host < hosts[j].Host })
				return output(g, hosts, func(w *tabwriter.Writer) {
					fmt.Fprintln(w, "ID\tCLASS\tWEIGHT\tNAME\tSTATUS")
					total := 0.0
					for _, h := range hosts {
						total += h.Weight
					}
					fmt.Fprintf(w, "-1\t\t%.3f\troot default\t\n", total)
					for _, h := range hosts {
						fmt.Fprintf(w, "\t\t%.3f\t  host %s\t\n", h.Weight, h.Host)
						for _, o := range h.OSDs {
							fmt.Fprintf(w, "%d\t%s\t%.3f\t    %s\t%s,%s\n", o.ID, o.Class, o.Weight, osdName(o.ID), upDown(o.Up), inOut(o.In))
						}
					}
				})
			})
		},
	}
}

func parseOSDID(s string) (int32, error) {
	if len(s) > 4 && s[:4] == "osd." {
		s = s[4:]
	}
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not an OSD id (use 3 or osd.3; see `tsumiki osd ls`)", s)
	}
	return int32(n), nil
}

func newOSDInOutCmd(g *globals, in bool) *cobra.Command {
	use, short := "out ID", "mark an OSD out: placement stops choosing it"
	if in {
		use, short = "in ID", "mark an OSD in: placement may choose it again"
	}
	return &cobra.Command{
		Use:   use,
		Short: short + " for new pools (existing PGs keep their replicas: `tsumiki osd drain` moves them off an OSD)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseOSDID(args[0])
			if err != nil {
				return err
			}
			return withClient(cmd, g, 10*time.Second, func(ctx context.Context, c *client.Client) error {
				if err := c.Maps().SetOSDIn(ctx, id, in); err != nil {
					return err
				}
				fmt.Printf("marked %s %s\n", osdName(id), inOut(in))
				return nil
			})
		},
	}
}

func newOSDReweightCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "reweight ID WEIGHT",
		Short: "set an OSD's placement weight",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseOSDID(args[0])
			if err != nil {
				return err
			}
			w, err := strconv.ParseFloat(args[1], 64)
			if err != nil {
				return fmt.Errorf("weight %q is not a number", args[1])
			}
			return withClient(cmd, g, 10*time.Second, func(ctx context.Context, c *client.Client) error {
				if err := c.Maps().SetOSDWeight(ctx, id, w); err != nil {
					return err
				}
				fmt.Printf("reweighted %s to %g\n", osdName(id), w)
				return nil
			})
		},
	}
}
