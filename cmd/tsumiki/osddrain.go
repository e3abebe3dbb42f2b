package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tsumiki-storage/tsumiki/storage/client"
	"github.com/tsumiki-storage/tsumiki/storage/clustermap"
)

func newOSDDrainCmd(g *globals) *cobra.Command {
	var (
		yes  bool
		wait time.Duration
	)
	cmd := &cobra.Command{
		Use:   "drain ID",
		Short: "move every PG replica off an OSD and mark it out (shown first; --yes to do it)",
		Long: `Plans one move per PG that lists the OSD: its other replicas stay, in their
order, and one other OSD joins (the one placement ranks first for the PG
among the OSDs in, up, of the pool's device class and, under failure domain
host, on a host the PG does not use yet). Without --yes the plan is only
shown. With --yes the OSD is marked out and every move is stored, in one
cluster map change; each PG then moves as with 'tsumiki pg move': the
joining OSD copies the PG, and only then does the drained OSD give up its
replica and drop its copy. The PGs keep serving throughout, and each OSD
takes in a bounded number of copies at a time. A PG with nowhere to go
keeps its replica on the OSD, and the plan says why.

The norebalance flag ('tsumiki flags set norebalance') holds the moves
back: no PG starts a new copy until it is unset.

--wait DURATION stays until no PG has the OSD among its replicas (but those
the plan leaves there) and every PG is active+clean, showing progress (the
moves go on if it gives up); run again after a drain, it waits for that
drain's moves.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseOSDID(args[0])
			if err != nil {
				return err
			}
			if wait > 0 && !yes {
				return fmt.Errorf("--wait waits for a drain that --yes starts: add --yes, or leave out --wait to see the plan")
			}
			return withClient(cmd, g, 30*time.Second+wait, func(ctx context.Context, c *client.Client) error {
				plan, err := c.Map().PlanDrain(id)
				if err != nil {
					return err
				}
				showDrainPlan(plan)
				if !yes {
					fmt.Printf("nothing changed: add --yes to mark %s out and store these moves\n", osdName(id))
					return nil
				}
				m, stored, err := c.Maps().DrainOSD(ctx, id)
				if err != nil {
					return err
				}
				if !slices.EqualFunc(stored.Moves, plan.Moves, samePGMove) {
					fmt.Println("the map changed meanwhile; stored instead:")
					showDrainPlan(stored)
				}
				fmt.Printf("marked %s out; %d moves stored at epoch %d; watch them with `tsumiki pg ls` (+remapped until done)\n",
					osdName(id), len(stored.Moves), m.Epoch)
				if m.HasFlag("norebalance") {
					fmt.Println("the norebalance flag is set: no move starts a copy until `tsumiki flags unset norebalance`")
				}
				if wait == 0 {
					return nil
				}
				return waitDrained(ctx, c, id, wait)
			})
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "mark the OSD out and store the moves (without it, the plan is only shown)")
	cmd.Flags().DurationVar(&wait, "wait", 0, "with --yes: wait up to this long for every PG to leave the OSD (0: do not wait)")
	return cmd
}

func samePGMove(a, b clustermap.PGMove) bool {
	return a.Pool == b.Pool && a.PG == b.PG && slices.Equal(a.To, b.To)
}

// showDrainPlan prints a drain plan: a line per PG, what each OSD
// receives, and the PGs that cannot move.
func showDrainPlan(p clustermap.DrainPlan) {
	if len(p.Moves)+len(p.Stuck) == 0 {
		fmt.Printf("no pg lists %s: nothing to move\n", osdName(p.OSD))
		return
	}
	fmt.Printf("drain %s: %d pgs move, %d cannot\n", osdName(p.OSD), len(p.Moves), len(p.Stuck))
	for _, mv := range p.Moves {
		fmt.Printf("  pg %d.%x: %s -> %s\n", mv.Pool, mv.PG, osdList(mv.From), osdList(mv.To))
	}
	if n := p.Targets(); len(n) > 0 {
		var parts []string
		for _, id := range slices.Sorted(maps.Keys(n)) {
			parts = append(parts, fmt.Sprintf("%s %d", osdName(id), n[id]))
		}
		fmt.Printf("  copies received: %s\n", strings.Join(parts, ", "))
	}
	for _, st := range p.Stuck {
		fmt.Printf("  pg %d.%x stays on %s: %s\n", st.Pool, st.PG, osdList(st.Replicas), st.Why)
	}
}

// waitDrained polls the OSDs until no PG that the map places off osd has
// it among its voters, and every such PG is active+clean, or d passes.
// The PGs the map still places on osd (a plan's stuck ones) are not
// waited for. Each poll looks at every PG: one whose leader did not
// answer is not active+clean.
func waitDrained(ctx context.Context, c *client.Client, osd int32, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	bar := newProgress("moving pgs", "pgs")
	defer bar.finish()
	for {
		m, err := c.Refresh(ctx)
		if err != nil {
			m = c.Map() // the last one loaded: the next poll tries again
		}
		states, _ := c.OSDStates(ctx)
		total, left, stuck := 0, 0, 0
		for _, row := range pgRows(m, states) {
			if slices.Contains(row.Up, osd) {
				stuck++
				continue
			}
			total++
			if slices.Contains(row.Acting, osd) || row.State != "active+clean" {
				left++
			}
		}
		bar.update(int64(total-left), int64(total))
		if left == 0 {
			fmt.Printf("drained: no pg the map places elsewhere has %s among its replicas, and all %d are active+clean", osdName(osd), total)
			if stuck > 0 {
				fmt.Printf("; %d pgs stay on %s (nowhere to go: see the plan)", stuck, osdName(osd))
			}
			fmt.Println()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("after %s, %d of %d pgs still have %s or are not active+clean; the moves go on: watch them with `tsumiki pg ls`",
				d, left, total, osdName(osd))
		case <-time.After(time.Second):
		}
	}
}

func newOSDRmCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "rm ID",
		Short: "remove a drained OSD from the cluster map (refused while anything still needs it)",
		Long: `Removes an OSD from the cluster map for good, once nothing needs it: its
daemon is stopped (down), it is out, no PG lists it, and no PG's raft
group still has it as a voter (a drain's moves are done: 'tsumiki osd drain
ID --yes --wait 30m'). Each refusal says what to do. Placement does not
change for any PG. Its disk, started again, would register as a new OSD.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseOSDID(args[0])
			if err != nil {
				return err
			}
			return withClient(cmd, g, 30*time.Second, func(ctx context.Context, c *client.Client) error {
				m, err := c.Refresh(ctx)
				if err != nil {
					return err
				}
				states, _ := c.OSDStates(ctx)
				var voting []string
				for _, row := range pgRows(m, states) {
					if slices.Contains(row.Acting, id) || slices.Contains(row.Learners, id) {
						voting = append(voting, row.PG)
					}
				}
				if len(voting) > 0 {
					return fmt.Errorf("%d pgs still have %s among their replicas (%s): their moves are under way; wait for them (`tsumiki osd drain %d --yes --wait 30m`)",
						len(voting), osdName(id), strings.Join(voting[:min(len(voting), 5)], ", "), id)
				}
				if err := c.Maps().RemoveOSD(ctx, id); err != nil {
					return err
				}
				fmt.Printf("removed %s from the cluster map\n", osdName(id))
				return nil
			})
		},
	}
}
