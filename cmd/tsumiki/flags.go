package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

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
				c, err := connect(cmd, g)
				if err != nil {
					return err
				}
				defer c.Close()
				ctx, cancel := opContext(cmd, 10*time.Second)
				defer cancel()
				if err := c.Maps().SetFlag(ctx, args[0], on); err != nil {
					return err
				}
				fmt.Printf("%s %s\n", args[0], verb)
				return nil
			},
		})
	}
	return cmd
}
