package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"gopkg.in/yaml.v3"

	"github.com/tsumiki-storage/tsumiki/nfsgw"
)

// Defaults of `tsumiki nfs serve`.
const (
	DefaultNFSListen     = ":2049"
	DefaultPortmapListen = ":111"
)

// nfsServeFlags are the flags of `tsumiki nfs serve`.
type nfsServeFlags struct {
	Dir           string
	Image         string
	FS            string
	Format        bool
	Export        string
	Listen        string
	PortmapListen string
	Config        string
}

// nfsFileConfig is configs/nfsgw.yaml.
type nfsFileConfig struct {
	// Listen and PortmapListen are used when the flags are not given.
	Listen        string `yaml:"listen"`
	PortmapListen string `yaml:"portmap_listen"`
	// Exports are the export rules, matched in order.
	Exports []nfsExportConfig `yaml:"exports"`
}

// nfsExportConfig is one export rule in YAML.
type nfsExportConfig struct {
	Path           string   `yaml:"path"`
	Networks       []string `yaml:"networks"`
	ReadOnly       bool     `yaml:"read_only"`
	RootSquash     bool     `yaml:"root_squash"`
	AnonUID        *uint32  `yaml:"anonuid"`
	AnonGID        *uint32  `yaml:"anongid"`
	UnstableWrites bool     `yaml:"unstable_writes"`
}

// loadNFSConfig decodes a YAML config strictly (unknown keys are errors).
func loadNFSConfig(path string) (nfsFileConfig, error) {
	var c nfsFileConfig
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("--config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("--config %s: %w", path, err)
	}
	return c, nil
}

// nfsExports turns the YAML rules into nfsgw exports. Without rules, it
// exports exportPath read-write to this machine's own clients only
// (loopback, which includes QEMU guests on user networking): a safe default;
// other networks must be named in --config.
func nfsExports(rules []nfsExportConfig, exportPath string) ([]nfsgw.Export, error) {
	if len(rules) == 0 {
		return []nfsgw.Export{{
			Path:     exportPath,
			Networks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
		}}, nil
	}
	var out []nfsgw.Export
	for i, r := range rules {
		e := nfsgw.Export{Path: r.Path, ReadOnly: r.ReadOnly, RootSquash: r.RootSquash, AnonUID: 65534, AnonGID: 65534, UnstableWrites: r.UnstableWrites}
		if r.AnonUID != nil {
			e.AnonUID = *r.AnonUID
		}
		if r.AnonGID != nil {
			e.AnonGID = *r.AnonGID
		}
		for _, n := range r.Networks {
			p, err := netip.ParsePrefix(n)
			if err != nil {
				a, aerr := netip.ParseAddr(n)
				if aerr != nil {
					return nil, fmt.Errorf("exports[%d].networks: %q is neither a network nor an address", i, n)
				}
				p = netip.PrefixFrom(a, a.BitLen())
			}
			e.Networks = append(e.Networks, p.Masked())
		}
		if err := e.Validate(); err != nil {
			return nil, fmt.Errorf("exports[%d]: %w", i, err)
		}
		out = append(out, e)
	}
	return out, nil
}

func newNFSCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "nfs",
		Short: "the NFS gateway",
	}
	var fl nfsServeFlags
	serve := &cobra.Command{
		Use:   "serve (--dir PATH | --image POOL/NAME) --export /data",
		Short: "serve a folder over NFSv3 (with MOUNT and a portmapper)",
		Long: `Serves a folder of a mounted filesystem over NFSv3, with a MOUNT service and a
portmapper, so that a plain Linux mount works:

  mount -t nfs -o vers=3,nolock GATEWAY:/data /mnt

--image POOL/NAME takes the image's exclusive lock, attaches it through the
kernel NBD client, makes a filesystem only if blkid finds none (never over
data), mounts it under /run/tsumiki/nfs and serves it; on SIGTERM it stops
serving, syncs, unmounts, detaches and releases the lock. After a crash
(kill -9, OOM) just start it again: it detaches the dead gateway's stale
mount (the kernel then frees its NBD device), waits up to 30 s for the dead
process's lock lease to expire, and the mount replays the journal.
--dir PATH serves a local folder (the benchmark/debug mode). Needs root:
file handles are the kernel's own (open_by_handle_at needs
CAP_DAC_READ_SEARCH) and the portmapper's port 111 is privileged.
Export rules (client networks, read-only) come from --config (see
configs/nfsgw.yaml); without one, --export is served read-write to clients on this
machine only (loopback; QEMU guests on user networking count as local).
SIGTERM or Ctrl-C stops serving.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(g)
			if err != nil {
				return err
			}
			defer log.Sync()
			if (fl.Dir == "") == (fl.Image == "") {
				return errors.New("nfs serve: give exactly one of --dir PATH or --image POOL/NAME")
			}
			var fc nfsFileConfig
			if fl.Config != "" {
				if fc, err = loadNFSConfig(fl.Config); err != nil {
					return err
				}
			}
			listen, pmap := fc.Listen, fc.PortmapListen
			if cmd.Flags().Changed("listen") || listen == "" {
				listen = fl.Listen
			}
			if cmd.Flags().Changed("portmap-listen") || pmap == "" {
				pmap = fl.PortmapListen
			}
			exports, err := nfsExports(fc.Exports, fl.Export)
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("export") && len(fc.Exports) > 0 {
				found := false
				for _, e := range exports {
					found = found || e.Path == fl.Export
				}
				if !found {
					return fmt.Errorf("--export %s is not among the exports of %s", fl.Export, fl.Config)
				}
			}
			serve := func(dir string) error {
				return serveNFSDir(cmd.Context(), dir, fl.Export, exports, listen, pmap, log)
			}
			if fl.Dir != "" {
				if fl.Format {
					return fmt.Errorf("--format goes with --image, not --dir: nothing is formatted in dir mode")
				}
				return serve(fl.Dir)
			}
			if _, _, err := parseSpec(fl.Image); err != nil {
				return err
			}
			if err := checkNFSImageHost(cmd.Context(), fl.FS); err != nil {
				return err
			}
			return runNFSImage(cmd.Context(), g, fl.Image, fl.FS, fl.Format, log, serve)
		},
	}
	f := serve.Flags()
	f.StringVar(&fl.Dir, "dir", "", "serve this local folder (benchmark/debug mode)")
	f.StringVar(&fl.Image, "image", "", "lock, attach (kernel NBD), format if blank, mount and serve image POOL/NAME (root, nbd module)")
	f.StringVar(&fl.FS, "fs", "ext4", "filesystem made on a blank image: ext4 or xfs")
	f.BoolVar(&fl.Format, "format", false, "with --image: format it even if it holds data, when blkid finds no file system on it")
	f.StringVar(&fl.Export, "export", "/data", "the path clients mount")
	f.StringVar(&fl.Listen, "listen", DefaultNFSListen, "NFS and MOUNT address (TCP; MOUNT also UDP)")
	f.StringVar(&fl.PortmapListen, "portmap-listen", DefaultPortmapListen, "portmapper address (TCP and UDP); empty: none")
	f.StringVar(&fl.Config, "config", "", "YAML file with export rules (configs/nfsgw.yaml)")
	cmd.AddCommand(serve)
	return cmd
}

// serveNFSDir serves dir over NFS until ctx ends.
func serveNFSDir(ctx context.Context, dir, export string, exports []nfsgw.Export, listen, pmap string, log *zap.Logger) error {
	fs, err := nfsgw.OpenFS(dir, false)
	if err != nil {
		return err
	}
	defer fs.Close()
	if _, err := fs.RootHandle(); err != nil {
		return fmt.Errorf("nfs serve: %s has no kernel file handles (name_to_handle_at; root needed): %w", dir, err)
	}
	srv, err := nfsgw.NewServer(nfsgw.Config{FS: fs, Exports: exports, Listen: listen, PortmapListen: pmap, Logger: log})
	if err != nil {
		return err
	}
	msg := fmt.Sprintf("tsumiki nfs serving %s as %s on %s", fs.Dir(), export, srv.Addr())
	if a := srv.PortmapAddr(); a != nil {
		msg += fmt.Sprintf(", portmapper on %s", a)
	}
	fmt.Println(msg)
	err = srv.Run(ctx)
	fmt.Println("tsumiki nfs stopped")
	return err
}
