package mon

import (
	"errors"
	"strings"
	"testing"

	"go.uber.org/zap"
)

func TestConfigDefaults(t *testing.T) {
	c := Config{DataDir: "/d", Logger: zap.NewNop(), AdvertisePeer: "http://10.0.0.1:2380,http://10.0.0.2:2380"}.withDefaults()
	if c.Name != "mon0" || c.ListenClient != DefaultListenClient || c.AdvertiseClient != DefaultListenClient {
		t.Fatalf("defaults not applied: %+v", c)
	}
	if want := "mon0=http://10.0.0.1:2380,mon0=http://10.0.0.2:2380"; c.InitialCluster != want {
		t.Fatalf("InitialCluster = %q, want %q", c.InitialCluster, want)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{DataDir: "/d", Logger: zap.NewNop()}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"no data dir", func(c *Config) { c.DataDir = "" }, "data directory is required"},
		{"no logger", func(c *Config) { c.Logger = nil }, "logger is required"},
		{"bad name", func(c *Config) { c.Name = "a=b" }, "member name"},
		{"bad url", func(c *Config) { c.ListenClient = "127.0.0.1:2379" }, "listen client URLs"},
		{"no port", func(c *Config) { c.ListenPeer = "http://127.0.0.1" }, "want http://host:port"},
		{"https", func(c *Config) { c.ListenClient = "https://127.0.0.1:2379" }, "TLS is not supported yet"},
		{"state", func(c *Config) { c.ClusterState = "join" }, "cluster state"},
		{"not listed", func(c *Config) { c.InitialCluster = "other=http://127.0.0.1:2380" }, "is not listed"},
		{"bad entry", func(c *Config) { c.InitialCluster = "mon0" }, "want name=http"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.edit(&c)
			_, err := New(c)
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New() error = %v, want ErrInvalidConfig mentioning %q", err, tc.want)
			}
		})
	}
}
