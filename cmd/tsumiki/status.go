package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/tsumiki-storage/tsumiki/storage/client"
	"github.com/tsumiki-storage/tsumiki/storage/clustermap"
)

// gatewayLine is one gateway's line in `tsumiki status`.
func gatewayLine(s clustermap.Service) string {
	if !s.Running {
		return fmt.Sprintf("%s on %s: not running: %s", s.Kind, s.Host, s.Reason)
	}
	line := fmt.Sprintf("%s on %s at %s", s.Kind, s.Host, s.Addr)
	if s.Serves != "" {
		line += ", " + s.Serves
	}
	return line
}

// statusReport is what `tsumiki status` prints (like `ceph -s`).
type statusReport struct {
	Health    string         `json:"health"`
	Problems  []string       `json:"problems,omitempty"`
	Epoch     uint64         `json:"epoch"`
	Endpoints []string       `json:"etcd_endpoints"`
	OSDs      int            `json:"osds"`
	OSDsUp    int            `json:"osds_up"`
	OSDsIn    int            `json:"osds_in"`
	Pools     int            `json:"pools"`
	PGs       int            `json:"pgs"`
	PGStates  map[string]int `json:"pg_states"`
	Flags     []string       `json:"flags,omitempty"`
	// Gateways are the NBD and NFS gateways' announcements: where each
	// runs, or why it does not (see clustermap.Service).
	Gateways []clustermap.Service `json:"gateways"`
}

func newStatusCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "cluster health summary; exit 0 when the control plane answers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withClient(cmd, g, 20*time.Second, func(ctx context.Context, c *client.Client) error {
				m := c.Map()
				rep := statusReport{Epoch: m.Epoch, Endpoints: endpoints(g), OSDs: len(m.OSDs), Pools: len(m.Pools), PGStates: map[string]int{}, Flags: m.Flags}
				full := false
				for _, o := range m.OSDs {
					if o.Up {
						rep.OSDsUp++
					} else {
						rep.Problems = append(rep.Problems, fmt.Sprintf("%s (host %s) is down: the other replicas of its PGs keep their raft log for it up to their --snapshot-behind, then a copy of the PG waits for it (bring it back; replica moves are not built yet)", osdName(o.ID), o.Host))
					}
					if o.In {
						rep.OSDsIn++
					}
					if o.Up && o.Full {
						rep.Problems = append(rep.Problems, fmt.Sprintf("%s (host %s) is full: writes are refused", osdName(o.ID), o.Host))
						full = true
					}
				}
				states, _ := c.OSDStates(ctx)
				behind := map[int32]int{} // pgs each OSD lags in
				for _, r := range pgRows(m, states) {
					rep.PGs++
					rep.PGStates[r.State]++
					for _, id := range r.Lagging {
						behind[id]++
					}
				}
				for id, n := range behind {
					// A down OSD has its own line. An up one that stays
					// behind reaches the control plane but not its peers:
					// the cluster network (seen in TestClusterNetCut).
					if o, ok := m.OSD(id); ok && o.Up {
						rep.Problems = append(rep.Problems, fmt.Sprintf("%s (host %s) is up but behind its PG leaders in %d pgs: "+
							"normal for a moment after a restart or under load; if it lasts, check that it reaches the other OSDs' cluster addresses (tsumiki osd ls)",
							osdName(id), o.Host, n))
					}
				}
				for st, n := range rep.PGStates {
					if st != "active+clean" {
						rep.Problems = append(rep.Problems, fmt.Sprintf("%d pgs %s", n, st))
					}
				}
				for _, f := range m.Flags {
					rep.Problems = append(rep.Problems, f+" flag(s) set")
				}
				if len(m.OSDs) == 0 {
					rep.Problems = append(rep.Problems, "no OSDs registered: start `tsumiki osd`")
				}
				if svcs, err := c.Maps().Services(ctx); err == nil {
					rep.Gateways = svcs
				} else {
					rep.Problems = append(rep.Problems, fmt.Sprintf("cannot list gateways: %v", err))
				}
				sort.Strings(rep.Problems)
				rep.Health = "HEALTH_OK"
				if len(rep.Problems) > 0 {
					rep.Health = "HEALTH_WARN"
				}
				if full {
					rep.Health = "HEALTH_ERR"
				}
				return output(g, rep, func(w *tabwriter.Writer) {
					fmt.Fprintf(w, "  health:\t%s\n", rep.Health)
					for _, p := range rep.Problems {
						fmt.Fprintf(w, "\t%s\n", p)
					}
					fmt.Fprintf(w, "  mon:\tetcd at %s, map epoch %d\n", strings.Join(rep.Endpoints, ","), rep.Epoch)
					fmt.Fprintf(w, "  osd:\t%d osds: %d up, %d in\n", rep.OSDs, rep.OSDsUp, rep.OSDsIn)
					fmt.Fprintf(w, "  pools:\t%d pools, %d pgs\n", rep.Pools, rep.PGs)
					var sts []string
					for st := range rep.PGStates {
						sts = append(sts, st)
					}
					sort.Strings(sts)
					for _, st := range sts {
						fmt.Fprintf(w, "\t%d %s\n", rep.PGStates[st], st)
					}
					if len(rep.Gateways) == 0 {
						fmt.Fprintf(w, "  gateways:\tnone announced\n")
					}
					for i, gw := range rep.Gateways {
						label := ""
						if i == 0 {
							label = "gateways:"
						}
						fmt.Fprintf(w, "  %s\t%s\n", label, gatewayLine(gw))
					}
				})
			})
		},
	}
}
