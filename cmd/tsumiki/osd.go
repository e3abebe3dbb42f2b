package main

import (
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tsumiki-storage/tsumiki/storage/chunkstore"
	"github.com/tsumiki-storage/tsumiki/storage/osd"
)

// osdConfig is `tsumiki osd`'s configuration (configs/osd.yaml).
type osdConfig struct {
	Data             string  `yaml:"data" flag:"data"`
	Host             string  `yaml:"host" flag:"host"`
	DeviceClass      string  `yaml:"device_class" flag:"device-class"`
	Weight           float64 `yaml:"weight" flag:"weight"`
	Listen           string  `yaml:"listen" flag:"listen"`
	ClusterListen    string  `yaml:"cluster_listen" flag:"cluster-listen"`
	Advertise        string  `yaml:"advertise" flag:"advertise"`
	ClusterAdvertise string  `yaml:"cluster_advertise" flag:"cluster-advertise"`
	MemtableMiB      int64   `yaml:"memtable_mib" flag:"memtable-mib"`
	BlockCacheMiB    int64   `yaml:"block_cache_mib" flag:"block-cache-mib"`
	IndexCacheMiB    int64   `yaml:"index_cache_mib" flag:"index-cache-mib"`
	DebugAddr        string  `yaml:"debug_addr" flag:"debug-addr"`
	MemoryLimitMiB   int64   `yaml:"memory_limit_mib" flag:"memory-limit-mib"`
	FullRatio        float64 `yaml:"full_ratio" flag:"full-ratio"`
	LogLargeWrites   bool    `yaml:"log_large_writes" flag:"log-large-writes"`
	StaleReserveMiB  int64   `yaml:"stale_reserve_mib" flag:"stale-reserve-mib"`
	SnapshotBehind   uint64  `yaml:"snapshot_behind" flag:"snapshot-behind"`
	SnapshotCopyMiBs int64   `yaml:"snapshot_copy_mibps" flag:"snapshot-copy-mibps"`
}

func (c osdConfig) store() chunkstore.Config {
	return chunkstore.Config{MemTableSize: c.MemtableMiB << 20, BlockCacheSize: c.BlockCacheMiB << 20, IndexCacheSize: c.IndexCacheMiB << 20,
		LogLargeWrites: c.LogLargeWrites, StaleReserve: staleReserve(c.StaleReserveMiB)}
}

// staleReserve turns --stale-reserve-mib into chunkstore.Config.StaleReserve
// (where 0 means the default and a negative value none).
func staleReserve(mib int64) int64 {
	if mib <= 0 {
		return -1
	}
	return mib << 20
}

// logLargeWritesHelp is the help of --log-large-writes (osd and up).
const logLargeWritesHelp = "keep writes of 64 KiB or more whole in the raft log as well as in the object files " +
	"(twice the device bytes; the default writes them once, into the object files)"

func addOSDFlags(cmd *cobra.Command, cfg *osdConfig) {
	f := cmd.Flags()
	f.StringVar(&cfg.Data, "data", "", "the device's data directory (required; one OSD per directory)")
	f.StringVar(&cfg.Host, "host", "", "failure-domain host name of this disk (required)")
	f.StringVar(&cfg.DeviceClass, "device-class", "hdd", "device class: hdd or ssd (pools may select one)")
	f.Float64Var(&cfg.Weight, "weight", 1, "placement weight, usually the capacity in TiB")
	f.StringVar(&cfg.Listen, "listen", "127.0.0.1:6800", "public address for clients")
	f.StringVar(&cfg.ClusterListen, "cluster-listen", "127.0.0.1:6900", "cluster address for replication between OSDs")
	f.StringVar(&cfg.Advertise, "advertise", "", "public address clients should dial (default: --listen)")
	f.StringVar(&cfg.ClusterAdvertise, "cluster-advertise", "", "cluster address peers should dial (default: --cluster-listen)")
	f.Int64Var(&cfg.MemtableMiB, "memtable-mib", 8, "chunk store memtable size (MiB); two are kept")
	f.Int64Var(&cfg.BlockCacheMiB, "block-cache-mib", 16, "chunk store block cache (MiB)")
	f.Int64Var(&cfg.IndexCacheMiB, "index-cache-mib", 8, "chunk store index cache (MiB)")
	f.Int64Var(&cfg.MemoryLimitMiB, "memory-limit-mib", 160, "soft limit of the Go heap (MiB): the garbage collector works harder near it; 0 = none")
	f.StringVar(&cfg.DebugAddr, "debug-addr", "", "serve Go profiling (/debug/pprof) on this address, e.g. 127.0.0.1:6060")
	f.BoolVar(&cfg.LogLargeWrites, "log-large-writes", false, logLargeWritesHelp)
	f.Int64Var(&cfg.StaleReserveMiB, "stale-reserve-mib", chunkstore.DefaultStaleReserve>>20,
		"most space (MiB) the stale copies large writes leave behind may keep, so later large writes overwrite them instead of filling holes; never more than 1/16 of the free space; 0 = free them at once")
	f.Float64Var(&cfg.FullRatio, "full-ratio", 0.95, "share of the device in use at which this OSD reports itself full (the cluster then refuses writes)")
	f.Uint64Var(&cfg.SnapshotBehind, "snapshot-behind", defaultSnapshotBehind, snapshotBehindHelp)
	f.Int64Var(&cfg.SnapshotCopyMiBs, "snapshot-copy-mibps", 100,
		"most MiB per second this OSD reads out for other OSDs catching up from snapshots, all together (0 = no bound)")
}

// copyRate turns --snapshot-copy-mibps into osd.Config.CopyRate (where 0
// means the default and a negative value no bound).
func copyRate(mibps int64) int64 {
	if mibps <= 0 {
		return -1
	}
	return mibps << 20
}

// defaultSnapshotBehind is --snapshot-behind's default: at a steady 25
// writes a second to one PG, half an hour of an OSD's absence is replayed
// from the log when it returns (a reboot, a maintenance window), and a
// longer one is copied; at 4 KiB a write the log so kept is about 200 MiB
// a PG at most. Ceph's pg log keeps 10000 entries by default before it
// backfills; copies cost more here (a whole PG, paced by
// --snapshot-copy-mibps), so the log is kept longer.
const defaultSnapshotBehind = 50000

// snapshotBehindHelp is the help of --snapshot-behind (osd and up).
const snapshotBehindHelp = "as a PG leader, stop keeping the raft log for a replica this many entries behind whose OSD is silent; " +
	"it then catches up from a copy of the PG over the cluster network (0 = keep the log until it returns, however long; " +
	"it grows on this OSD meanwhile)"

func newOSDCmd(g *globals) *cobra.Command {
	var cfg osdConfig
	var cfgPath string
	cmd := &cobra.Command{
		Use:   "osd --data DIR --host NAME",
		Short: "run one storage daemon (one per disk), or manage OSDs (ls, tree, in, out, reweight, drain, rm)",
		Long: `Runs one storage daemon over one disk's folder: a badger chunk store, a raft
member for every placement group the disk holds, a public listener for clients
and a cluster listener for replication. It registers itself in the cluster map
on start and keeps the same id across restarts on the same --data.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := loadConfig(cmd, cfgPath, &cfg); err != nil {
				return err
			}
			if cfg.SnapshotCopyMiBs < 0 {
				return fmt.Errorf("--snapshot-copy-mibps %d: give MiB per second, or 0 for no bound", cfg.SnapshotCopyMiBs)
			}
			if !(cfg.FullRatio > 0 && cfg.FullRatio <= 1) {
				return fmt.Errorf("--full-ratio %v: give the share of the device, above 0 and at most 1 (e.g. 0.95)", cfg.FullRatio)
			}
			log, err := newLogger(g)
			if err != nil {
				return err
			}
			defer log.Sync()
			serveDebug(cmd.Context(), cfg.DebugAddr, log)
			if cfg.MemoryLimitMiB > 0 {
				// One OSD per process: its heap limit is the process's.
				debug.SetMemoryLimit(cfg.MemoryLimitMiB << 20)
			}
			d, err := osd.NewDaemon(osd.Config{
				DataDir: cfg.Data, Host: cfg.Host, Class: cfg.DeviceClass, Weight: cfg.Weight,
				Listen: cfg.Listen, ClusterListen: cfg.ClusterListen, Advertise: cfg.Advertise, ClusterAdvertise: cfg.ClusterAdvertise,
				EtcdEndpoints: endpoints(g), EtcdPrefix: g.etcdPrefix, Store: cfg.store(), Logger: log,
				FullRatio: cfg.FullRatio, SnapshotBehind: cfg.SnapshotBehind, CopyRate: copyRate(cfg.SnapshotCopyMiBs),
			})
			if err != nil {
				return err
			}
			return d.Run(cmd.Context())
		},
	}
	addOSDFlags(cmd, &cfg)
	cmd.Flags().StringVar(&cfgPath, "config", "", "YAML config file (see configs/osd.yaml); flags override it")
	cmd.AddCommand(newOSDLsCmd(g), newOSDTreeCmd(g), newOSDInOutCmd(g, true), newOSDInOutCmd(g, false), newOSDReweightCmd(g), newOSDDrainCmd(g), newOSDRmCmd(g), newOSDMapCmd(g))
	return cmd
}

func endpoints(g *globals) []string {
	var out []string
	for _, e := range strings.Split(g.etcdEndpoints, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

func osdName(id int32) string { return fmt.Sprintf("osd.%d", id) }
