package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tsumiki-storage/tsumiki/storage/client"
	"github.com/tsumiki-storage/tsumiki/storage/clustermap"
)

func newFlagsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "flags", Short: "set or unset cluster flags (" + strings.Join(clustermap.KnownFlags(), ", ") + ")"}
	for _, on := range []bool{true, false} {
		verb := "unset"
		if on {
			verb = "set"
		}
		cmd.AddCommand(&cobra.Command{
			Use:   verb + " FLAG",
			Short: verb + " a cluster flag",
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return withClient(cmd, g, 10*time.Second, func(ctx context.Context, c *client.Client) error {
					if err := c.Maps().SetFlag(ctx, args[0], on); err != nil {
						return err
					}
					fmt.Printf("%s %s\n", args[0], verb)
					return nil
				})
			},
		})
	}
	return cmd
}
