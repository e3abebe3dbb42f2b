package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tsumiki-storage/tsumiki/storage/client"
)

func newPGMoveCmd(g *globals) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "move PGID OSD,OSD,...",
		Short: "give a PG other replicas (primary first); it moves there one replica at a time",
		Long: `Gives a PG the replicas listed, primary first (as many as its pool's size,
in and up, on distinct hosts when the pool's failure domain is host). The
list is stored in the cluster map and replaces the PG's placement until
another move; nothing else ever changes it. The PG's leader then changes its
raft group one replica at a time: a joining OSD copies the PG from the
others (from the log, or a copy of the PG over the cluster network), and
only once it holds everything does a leaving OSD give up its seat and drop
its copy. The PG serves reads and writes throughout (OSDs started with
--snapshot-behind 0 cannot catch a new member up, and do not move a PG;
they log why). Without --yes the move is only shown. Watch it with 'tsumiki pg ls': UP is the new list, ACTING the
voters, and the state says +remapped until they agree.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			pool, pg, err := parsePGID(args[0])
			if err != nil {
				return err
			}
			var members []int32
			for _, s := range strings.Split(args[1], ",") {
				id, err := parseOSDID(strings.TrimSpace(s))
				if err != nil {
					return err
				}
				members = append(members, id)
			}
			return withClient(cmd, g, 30*time.Second, func(ctx context.Context, c *client.Client) error {
				m := c.Map()
				if err := m.CheckMove(pool, pg, members); err != nil {
					return err
				}
				p, _ := m.PoolByID(pool)
				old := m.Replicas(p, pg)
				name := fmt.Sprintf("pg %d.%x (pool %s)", pool, pg, p.Name)
				if slices.Equal(old, members) {
					fmt.Printf("%s already has replicas %s; nothing to do\n", name, osdList(old))
					return nil
				}
				fmt.Printf("%s: %s -> %s\n", name, osdList(old), osdList(members))
				for _, id := range members {
					if !slices.Contains(old, id) {
						fmt.Printf("  joins:  %s (copies the pg from the others)\n", osdName(id))
					}
				}
				for _, id := range old {
					if !slices.Contains(members, id) {
						fmt.Printf("  leaves: %s (drops its copy once the others hold everything)\n", osdName(id))
					}
				}
				if len(old) > 0 && old[0] != members[0] {
					fmt.Printf("  primary: %s -> %s\n", osdName(old[0]), osdName(members[0]))
				}
				if !yes {
					fmt.Println("nothing changed: add --yes to move it")
					return nil
				}
				nm, _, err := c.Maps().MovePG(ctx, pool, pg, members)
				if err != nil {
					return err
				}
				fmt.Printf("stored at epoch %d; watch it with `tsumiki pg ls` (+remapped until done)\n", nm.Epoch)
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "store the move (without it, the move is only shown)")
	return cmd
}

// osdList shows OSD ids as "osd.1, osd.2".
func osdList(ids []int32) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = osdName(id)
	}
	return strings.Join(s, ", ")
}
