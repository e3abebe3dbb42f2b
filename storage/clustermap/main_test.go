package clustermap_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tsumiki-storage/tsumiki/storage/clustermap"
	"github.com/tsumiki-storage/tsumiki/storage/mon/montest"
)

// endpoints of the one control plane shared by every test of this binary;
// each test works under its own key prefix.
var endpoints []string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "clustermap-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	r, err := montest.Start(dir, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() {
		if err := r.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop mon:", err)
		}
	}()
	endpoints = r.Endpoints
	return m.Run()
}

// newStore returns a store under a prefix of the test's own, and its client.
func newStore(t *testing.T) (*clustermap.Store, *clientv3.Client) {
	t.Helper()
	cli, err := clustermap.Dial(context.Background(), endpoints, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	prefix := "/test/" + strings.ReplaceAll(t.Name(), "/", "_")
	return clustermap.NewStore(cli, prefix, nil), cli
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func osd(uuid, host string) clustermap.OSD {
	return clustermap.OSD{UUID: uuid, Host: host, Class: "hdd", Weight: 1, PublicAddr: "10.0.0.1:6800", ClusterAddr: "10.1.0.1:6800"}
}

func mustRegister(t *testing.T, s *clustermap.Store, o clustermap.OSD) clustermap.OSD {
	t.Helper()
	got, err := s.RegisterOSD(testCtx(t), o)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func mustLoad(t *testing.T, s *clustermap.Store) *clustermap.Map {
	t.Helper()
	m, err := s.Load(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// wantEpoch fails unless the stored map is at epoch want.
func wantEpoch(t *testing.T, s *clustermap.Store, want uint64) {
	t.Helper()
	if got := mustLoad(t, s).Epoch; got != want {
		t.Fatalf("epoch = %d, want %d", got, want)
	}
}
