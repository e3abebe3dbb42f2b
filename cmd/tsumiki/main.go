// Command tsumiki is the one binary of tsumiki: daemons (mon, osd, up) and
// admin verbs (pool, osd ls/tree, pg, object, status). This is the only
// place where concrete types meet: flags and YAML become configs here.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// exitError carries a specific exit code (e.g. pg verify found differences).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func main() {
	raiseProcs()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRoot()
	err := root.ExecuteContext(ctx)
	if err == nil {
		return
	}
	fmt.Fprintln(os.Stderr, "tsumiki:", err)
	var ee *exitError
	if errors.As(err, &ee) {
		os.Exit(ee.code)
	}
	os.Exit(1)
}

// globals are the flags every command takes.
type globals struct {
	etcdEndpoints string
	etcdPrefix    string
	logLevel      string
	logFormat     string
	output        string
}

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "tsumiki",
		Short: "tsumiki: replicated block storage (chunk stores, placement, raft PGs)",
		Long: `tsumiki pools the disks of a few hosts into one replicated object store.

Daemons:  tsumiki up | mon | osd
Admin:    tsumiki status | pool ... | osd ls/tree/in/out | pg ls/verify | object ...

Every command reaches the control plane (etcd) at --etcd-endpoints
(env TSUMIKI_ETCD_ENDPOINTS, default http://127.0.0.1:2379).`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	def := os.Getenv("TSUMIKI_ETCD_ENDPOINTS")
	if def == "" {
		def = "http://127.0.0.1:2379"
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.etcdEndpoints, "etcd-endpoints", def, "control-plane endpoints, comma-separated (env TSUMIKI_ETCD_ENDPOINTS)")
	pf.StringVar(&g.etcdPrefix, "etcd-prefix", "/tsumiki", "key prefix of this cluster in etcd")
	pf.StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	pf.StringVar(&g.logFormat, "log-format", "console", "log format: console or json")
	pf.StringVarP(&g.output, "output", "o", "table", "admin output: table or json")
	root.AddCommand(
		newUpCmd(g), newMonCmd(g), newOSDCmd(g), newPoolCmd(g), newObjectCmd(g),
		newPGCmd(g), newStatusCmd(g), newFlagsCmd(g), newEpochCmd(g),
		newImageCmd(g),
		newNBDCmd(g),
		newNFSCmd(g),
		newMapCmd(g),
		newUnmapCmd(g),
		newShowmappedCmd(g),
	)
	return root
}
