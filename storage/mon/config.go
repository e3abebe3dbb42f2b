package mon

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"
)

// Defaults for Config.
const (
	DefaultName            = "mon0"
	DefaultListenClient    = "http://127.0.0.1:2379"
	DefaultListenPeer      = "http://127.0.0.1:2380"
	DefaultClusterState    = "new"
	DefaultReadyTimeout    = 60 * time.Second
	defaultClusterToken    = "tsumiki"
	defaultCompactRevision = "10000" // keep the last 10000 revisions of history
	defaultQuotaBytes      = 2 << 30 // 2 GiB, etcd's own default, stated explicitly
)

// Config describes one control-plane member. The zero value is not usable:
// DataDir and Logger are required. Lists of URLs are comma-separated.
type Config struct {
	// Name is the member name, unique in the cluster. Default "mon0".
	Name string
	// DataDir holds etcd's WAL and database. Required. Created (0700) if
	// missing. Only one mon may use it at a time.
	DataDir string
	// ListenClient is where clients connect. Default "http://127.0.0.1:2379".
	ListenClient string
	// ListenPeer is where other members connect. Default "http://127.0.0.1:2380".
	ListenPeer string
	// AdvertiseClient and AdvertisePeer are the URLs this member announces.
	// They default to the listen URLs.
	AdvertiseClient, AdvertisePeer string
	// InitialCluster lists every member of a new cluster as
	// "name=peerURL,name=peerURL". Default "<Name>=<AdvertisePeer>".
	// It is ignored once the data directory holds a member.
	InitialCluster string
	// ClusterState is "new" (default) to bootstrap a cluster or "existing"
	// to join one (after `member add` on a running member).
	ClusterState string
	// ReadyTimeout bounds the wait for the member to be ready (for a new
	// multi-member cluster: until a majority has started). Default 60s.
	ReadyTimeout time.Duration
	// Logger receives etcd's log at warn level and above. Required.
	Logger *zap.Logger
}

// withDefaults returns a copy of c with empty fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.Name == "" {
		c.Name = DefaultName
	}
	if c.ListenClient == "" {
		c.ListenClient = DefaultListenClient
	}
	if c.ListenPeer == "" {
		c.ListenPeer = DefaultListenPeer
	}
	if c.AdvertiseClient == "" {
		c.AdvertiseClient = c.ListenClient
	}
	if c.AdvertisePeer == "" {
		c.AdvertisePeer = c.ListenPeer
	}
	if c.InitialCluster == "" {
		var parts []string
		for _, u := range splitList(c.AdvertisePeer) {
			parts = append(parts, c.Name+"="+u)
		}
		c.InitialCluster = strings.Join(parts, ",")
	}
	if c.ClusterState == "" {
		c.ClusterState = DefaultClusterState
	}
	if c.ReadyTimeout == 0 {
		c.ReadyTimeout = DefaultReadyTimeout
	}
	return c
}

// Validate reports every broken rule of c, each wrapping ErrInvalidConfig.
// Call it on a config with defaults applied (New does).
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}
	if c.Name == "" || strings.ContainsAny(c.Name, "=, \t") {
		bad("member name %q must be non-empty without '=', ',' or spaces", c.Name)
	}
	if c.DataDir == "" {
		bad("data directory is required: pass --data DIR")
	}
	if c.Logger == nil {
		bad("a logger is required")
	}
	for _, f := range []struct{ name, val string }{
		{"listen client URLs", c.ListenClient},
		{"listen peer URLs", c.ListenPeer},
		{"advertise client URLs", c.AdvertiseClient},
		{"advertise peer URLs", c.AdvertisePeer},
	} {
		if _, err := parseURLs(f.val); err != nil {
			bad("%s %q: %v", f.name, f.val, err)
		}
	}
	if err := checkInitialCluster(c.InitialCluster, c.Name); err != nil {
		bad("initial cluster %q: %v", c.InitialCluster, err)
	}
	if c.ClusterState != "new" && c.ClusterState != "existing" {
		bad("cluster state %q: use \"new\" to bootstrap or \"existing\" to join", c.ClusterState)
	}
	if c.ReadyTimeout < 0 {
		bad("ready timeout %v must not be negative", c.ReadyTimeout)
	}
	return errors.Join(errs...)
}

// splitList splits a comma-separated list, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// parseURLs parses a comma-separated list of http://host:port URLs.
func parseURLs(s string) ([]url.URL, error) {
	list := splitList(s)
	if len(list) == 0 {
		return nil, errors.New("no URL given")
	}
	out := make([]url.URL, 0, len(list))
	for _, raw := range list {
		u, err := url.Parse(raw)
		if err != nil {
			return nil, err
		}
		switch {
		case u.Scheme == "https":
			return nil, fmt.Errorf("%s: TLS is not supported yet, use http://", raw)
		case u.Scheme != "http":
			return nil, fmt.Errorf("%s: want http://host:port", raw)
		case u.Path != "" && u.Path != "/":
			return nil, fmt.Errorf("%s: a URL here has no path", raw)
		}
		if _, _, err := net.SplitHostPort(u.Host); err != nil {
			return nil, fmt.Errorf("%s: want http://host:port: %v", raw, err)
		}
		u.Path = ""
		out = append(out, *u)
	}
	return out, nil
}

// checkInitialCluster checks "name=url,..." syntax and that name is listed.
func checkInitialCluster(s, name string) error {
	found := false
	for _, p := range splitList(s) {
		n, u, ok := strings.Cut(p, "=")
		if !ok || n == "" {
			return fmt.Errorf("entry %q: want name=http://host:port", p)
		}
		if _, err := parseURLs(u); err != nil {
			return fmt.Errorf("entry %q: %v", p, err)
		}
		found = found || n == name
	}
	if !found {
		return fmt.Errorf("this member %q is not listed", name)
	}
	return nil
}
