package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tsumiki-storage/tsumiki/storage/client"
)

// connect opens a client for an admin verb. The control plane must answer
// within a few seconds or the verb fails with a message saying what to do.
func connect(cmd *cobra.Command, g *globals) (*client.Client, error) {
	log, err := adminLogger(g)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), 15*time.Second)
	defer cancel()
	return client.New(ctx, client.Config{EtcdEndpoints: endpoints(g), EtcdPrefix: g.etcdPrefix, Logger: log})
}

// output prints v as JSON with --output json, else calls table with a
// tabwriter on stdout.
func output(g *globals, v any, table func(w *tabwriter.Writer)) error {
	switch g.output {
	case "json":
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "table", "":
		w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		table(w)
		return w.Flush()
	}
	return fmt.Errorf("--output %q: use table or json", g.output)
}

// opContext bounds one admin operation.
func opContext(cmd *cobra.Command, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(cmd.Context(), d)
}

// withClient connects for an admin verb, bounds the operation by d and
// runs fn; the connection is closed afterwards.
func withClient(cmd *cobra.Command, g *globals, d time.Duration, fn func(ctx context.Context, c *client.Client) error) error {
	c, err := connect(cmd, g)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := opContext(cmd, d)
	defer cancel()
	return fn(ctx, c)
}
