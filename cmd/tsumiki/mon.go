package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tsumiki-storage/tsumiki/storage/mon"
)

// monConfig is `tsumiki mon`'s configuration (configs/mon.yaml).
type monConfig struct {
	Name           string `yaml:"name" flag:"name"`
	Data           string `yaml:"data" flag:"data"`
	ListenClient   string `yaml:"listen_client" flag:"listen-client"`
	ListenPeer     string `yaml:"listen_peer" flag:"listen-peer"`
	AdvertiseCl    string `yaml:"advertise_client" flag:"advertise-client"`
	AdvertisePeer  string `yaml:"advertise_peer" flag:"advertise-peer"`
	InitialCluster string `yaml:"initial_cluster" flag:"initial-cluster"`
	ClusterState   string `yaml:"initial_cluster_state" flag:"initial-cluster-state"`
}

func newMonCmd(g *globals) *cobra.Command {
	var cfg monConfig
	var cfgPath string
	cmd := &cobra.Command{
		Use:   "mon --data DIR",
		Short: "run a control-plane member (embedded etcd; 1, 3 or 5 per cluster)",
		Long: `Runs one member of the control plane: an embedded etcd that holds the
cluster map, OSD liveness leases and (later) images and locks.

A single mon is enough to try tsumiki. For three members, start each with the
same --initial-cluster "mon0=http://a:2380,mon1=http://b:2380,mon2=http://c:2380"
and its own --name/--listen-*. Sites that already run etcd skip mon and point
every daemon at it with --etcd-endpoints.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := loadConfig(cmd, cfgPath, &cfg); err != nil {
				return err
			}
			if cfg.Data == "" {
				return fmt.Errorf("--data DIR is required (where this member keeps its database)")
			}
			log, err := newLogger(g)
			if err != nil {
				return err
			}
			defer log.Sync()
			m, err := mon.New(mon.Config{
				Name: cfg.Name, DataDir: cfg.Data, ListenClient: cfg.ListenClient, ListenPeer: cfg.ListenPeer,
				AdvertiseClient: cfg.AdvertiseCl, AdvertisePeer: cfg.AdvertisePeer,
				InitialCluster: cfg.InitialCluster, ClusterState: cfg.ClusterState, Logger: log,
			})
			if err != nil {
				return err
			}
			return m.Run(cmd.Context(), func(urls []string) {
				log.Sugar().Infof("mon %s ready; clients connect to %v", cfg.Name, urls)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfgPath, "config", "", "YAML config file (see configs/mon.yaml); flags override it")
	f.StringVar(&cfg.Name, "name", mon.DefaultName, "member name, unique in the cluster")
	f.StringVar(&cfg.Data, "data", "", "data directory (required)")
	f.StringVar(&cfg.ListenClient, "listen-client", mon.DefaultListenClient, "client URL(s) to listen on")
	f.StringVar(&cfg.ListenPeer, "listen-peer", mon.DefaultListenPeer, "peer URL(s) to listen on")
	f.StringVar(&cfg.AdvertiseCl, "advertise-client", "", "client URL(s) to announce (default: --listen-client)")
	f.StringVar(&cfg.AdvertisePeer, "advertise-peer", "", "peer URL(s) to announce (default: --listen-peer)")
	f.StringVar(&cfg.InitialCluster, "initial-cluster", "", `all members of a new cluster, "name=peerURL,..." (default: this one alone)`)
	f.StringVar(&cfg.ClusterState, "initial-cluster-state", "new", "new, or existing to join a running cluster")
	return cmd
}
