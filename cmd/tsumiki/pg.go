package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tsumiki-storage/tsumiki/storage/client"
	"github.com/tsumiki-storage/tsumiki/storage/clustermap"
	"github.com/tsumiki-storage/tsumiki/storage/wire"
)

func newPGCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "pg", Short: "placement group state and verification"}
	cmd.AddCommand(newPGLsCmd(g), newPGVerifyCmd(g), newPGLeadCmd(g), newPGMoveCmd(g))
	return cmd
}

// pgRow is one PG as `pg ls` shows it.
type pgRow struct {
	PG      string  `json:"pg"`
	Pool    string  `json:"pool"`
	State   string  `json:"state"`
	Up      []int32 `json:"up"`     // replicas placement chooses now
	Acting  []int32 `json:"acting"` // raft voters
	Leader  int32   `json:"leader"`
	Term    uint64  `json:"term"`
	Applied uint64  `json:"applied"`
	Lagging []int32 `json:"lagging,omitempty"`
	// Learners are joining (a move): copying the PG, in no quorum yet.
	Learners []int32 `json:"learners,omitempty"`
}

// pgRows merges placement and what each OSD reports about its PGs.
func pgRows(m *clustermap.Map, states map[int32][]wire.PGState) []pgRow {
	type key struct {
		osd      int32
		pool, pg uint32
	}
	idx := map[key]wire.PGState{}
	for osd, sts := range states {
		for _, s := range sts {
			idx[key{osd, s.Pool, s.PG}] = s
		}
	}
	var rows []pgRow
	for _, p := range m.Pools {
		for pg := uint32(0); pg < p.PGNum; pg++ {
			row := pgRow{PG: fmt.Sprintf("%d.%x", p.ID, pg), Pool: p.Name, Up: m.Replicas(p, pg), Leader: -1}
			for osd := range states {
				if s, ok := idx[key{osd, p.ID, pg}]; ok && s.Leader >= 0 && s.Term >= row.Term {
					row.Term, row.Leader = s.Term, s.Leader
				}
			}
			var lead *wire.PGState
			if s, ok := idx[key{row.Leader, p.ID, pg}]; ok && s.Leader == row.Leader {
				lead = &s
				row.Acting, row.Applied, row.Lagging, row.Learners = s.Voters, s.Applied, s.Lagging, s.Learners
			}
			row.State = pgState(m, row, lead)
			rows = append(rows, row)
		}
	}
	return rows
}

func pgState(m *clustermap.Map, row pgRow, lead *wire.PGState) string {
	if lead == nil || lead.Leader != row.Leader {
		return "inactive"
	}
	st := "active"
	down := false
	for _, v := range lead.Voters {
		if o, ok := m.OSD(v); !ok || !o.Up {
			down = true
		}
	}
	switch {
	case down:
		st += "+degraded"
	case len(lead.Lagging) > 0:
		st += "+recovering"
	default:
		st += "+clean"
	}
	if !slices.Equal(sorted(row.Up), sorted(lead.Voters)) {
		st += "+remapped"
	}
	if len(lead.Learners) > 0 {
		st += "+backfilling" // a joining replica copies the PG
	}
	return st
}

func sorted(ids []int32) []int32 {
	c := slices.Clone(ids)
	slices.Sort(c)
	return c
}

func newPGLsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "ls",
		Short: "list placement groups with their state, replicas and leader",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withClient(cmd, g, 30*time.Second, func(ctx context.Context, c *client.Client) error {
				states, _ := c.OSDStates(ctx)
				rows := pgRows(c.Map(), states)
				return output(g, rows, func(w *tabwriter.Writer) {
					fmt.Fprintln(w, "PG\tPOOL\tSTATE\tUP\tACTING\tLEADER\tTERM\tAPPLIED")
					for _, r := range rows {
						acting := fmt.Sprint(r.Acting)
						if len(r.Learners) > 0 {
							acting += fmt.Sprintf("+%v", r.Learners) // joining
						}
						fmt.Fprintf(w, "%s\t%s\t%s\t%v\t%s\t%d\t%d\t%d\n", r.PG, r.Pool, r.State, r.Up, acting, r.Leader, r.Term, r.Applied)
					}
				})
			})
		},
	}
}

func newPGVerifyCmd(g *globals) *cobra.Command {
	var timeout time.Duration
	var parallel int
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "compare every replica of every PG; exit 0 only when all are identical",
		Long: `Asks every replica of every PG for a digest of its copy (names, sizes,
versions and contents of all objects, read through the block checksums) and
compares them. Replicas still catching up are given --timeout per PG to reach
the same applied index. A PG's replicas are read at once (each from its
own disk); --parallel PGs are verified at once, so each disk reads that
many PGs at a time. Exit status 0: all identical; 1: differences or
unreadable replicas, listed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if parallel < 1 {
				return fmt.Errorf("--parallel %d: give at least 1 (PGs verified at once)", parallel)
			}
			return withClient(cmd, g, 30*time.Second, func(_ context.Context, c *client.Client) error {
				bar := newProgress("pg verify", "pgs")
				results := c.VerifyPGs(cmd.Context(), timeout, parallel, bar.update)
				bar.finish()
				bad := 0
				for _, v := range results {
					if !v.Consistent {
						bad++
					}
				}
				err := output(g, verifyJSON(results), func(w *tabwriter.Writer) {
					for _, v := range results {
						if v.Consistent {
							continue
						}
						fmt.Fprintf(w, "pg %d.%x INCONSISTENT\n", v.Pool, v.PG)
						for _, r := range v.Replicas {
							if r.Err != nil {
								fmt.Fprintf(w, "  osd.%d\terror: %v\n", r.OSD, r.Err)
							} else {
								fmt.Fprintf(w, "  osd.%d\tapplied %d\tobjects %d\tdigest %x\n", r.OSD, r.Digest.Applied, r.Digest.Objects, r.Digest.Sum[:8])
							}
						}
					}
					fmt.Fprintf(w, "%d pgs verified, %d consistent, %d inconsistent\n", len(results), len(results)-bad, bad)
				})
				if err != nil {
					return err
				}
				if bad > 0 {
					return &exitError{code: 1, err: errors.New("replicas differ: see the listing above")}
				}
				return nil
			})
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 20*time.Second, "per PG: how long replicas may take to reach the same applied index")
	cmd.Flags().IntVar(&parallel, "parallel", 1, "PGs verified at once (each reads its whole copy on every replica's disk)")
	return cmd
}

type verifyRow struct {
	PG         string           `json:"pg"`
	Consistent bool             `json:"consistent"`
	Replicas   []map[string]any `json:"replicas"`
}

func verifyJSON(vs []client.PGVerify) []verifyRow {
	out := make([]verifyRow, len(vs))
	for i, v := range vs {
		out[i] = verifyRow{PG: fmt.Sprintf("%d.%x", v.Pool, v.PG), Consistent: v.Consistent}
		for _, r := range v.Replicas {
			m := map[string]any{"osd": r.OSD, "applied": r.Digest.Applied, "objects": r.Digest.Objects, "digest": fmt.Sprintf("%x", r.Digest.Sum)}
			if r.Err != nil {
				m["error"] = r.Err.Error()
			}
			out[i].Replicas = append(out[i].Replicas, m)
		}
	}
	return out
}
