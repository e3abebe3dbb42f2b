package main

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/tsumiki-storage/tsumiki/storage/client"
)

func newEpochCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "epoch",
		Short: "show the cluster map's epoch, or raise it after a control-plane restore",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withClient(cmd, g, 10*time.Second, func(_ context.Context, c *client.Client) error {
				fmt.Printf("cluster map epoch %d\n", c.Map().Epoch)
				return nil
			})
		},
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "raise EPOCH",
		Short: "make the map's epoch at least EPOCH (after restoring the control plane from a backup; the OSDs log the value to use)",
		Long: `Daemons refuse requests made with a cluster map older than one they have
seen, and never go back to a lower epoch. A control plane restored from a
backup holds an older map, so every client is refused as stale until the
epoch passes what the daemons saw: the OSDs log "the cluster map's epoch
went back" with the epoch to raise to, and clients name it in their error.
Run this once every daemon uses the restored control plane.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			to, err := strconv.ParseUint(args[0], 10, 64)
			if err != nil || to == 0 {
				return fmt.Errorf("%q is not an epoch: give a positive whole number, the one the OSDs log", args[0])
			}
			return withClient(cmd, g, 10*time.Second, func(ctx context.Context, c *client.Client) error {
				m, err := c.Maps().RaiseEpoch(ctx, to)
				if err != nil {
					return err
				}
				fmt.Printf("cluster map epoch %d\n", m.Epoch)
				return nil
			})
		},
	})
	return cmd
}
