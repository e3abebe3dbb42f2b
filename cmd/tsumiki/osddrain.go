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

--wait DURATION stays until every moved PG is active+clean on its new
replicas, showing progress (the moves go on if it gives up).`,
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
				if wait == 0 || len(stored.Moves) == 0 {
					return nil
				}
				return waitMoves(ctx, c, stored.Moves, wait)
			})
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "mark the OSD out and store the moves (without it, the plan is only shown)")
	cmd.Flags().DurationVar(&wait, "wait", 0, "with --yes: wait up to this long for the PGs to finish moving (0: do not wait)")
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

// waitMoves polls the OSDs until every PG of moves is active+clean with
// its new replicas as voters, or d passes.
func waitMoves(ctx context.Context, c *client.Client, moves []clustermap.PGMove, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	want := map[string][]int32{}
	for _, mv := range moves {
		want[fmt.Sprintf("%d.%x", mv.Pool, mv.PG)] = sorted(mv.To)
	}
	bar := newProgress("moving pgs", "pgs")
	defer bar.finish()
	for {
		m, err := c.Refresh(ctx)
		if err != nil {
			m = c.Map() // the last one loaded: the next poll tries again
		}
		states, _ := c.OSDStates(ctx)
		left := len(want)
		for _, row := range pgRows(m, states) {
			if to, ok := want[row.PG]; ok && row.State == "active+clean" && slices.Equal(sorted(row.Acting), to) {
				left--
			}
		}
		bar.update(int64(len(want)-left), int64(len(want)))
		if left == 0 {
			fmt.Printf("every pg moved: %d active+clean on their new replicas\n", len(want))
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("after %s, %d of %d pgs are still moving; they go on: watch them with `tsumiki pg ls`", d, left, len(want))
		case <-time.After(time.Second):
		}
	}
}
