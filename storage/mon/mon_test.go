package mon_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tsumiki-storage/tsumiki/storage/mon"
	"github.com/tsumiki-storage/tsumiki/storage/mon/montest"
)

// startMon runs m and waits for ready; it returns the endpoints and a stop
// function that cancels and returns Run's error.
func startMon(t *testing.T, cfg mon.Config) ([]string, func() error) {
	t.Helper()
	m, err := mon.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	readyc := make(chan []string, 1)
	go func() { done <- m.Run(ctx, func(u []string) { readyc <- u }) }()
	select {
	case eps := <-readyc:
		stopped := false
		stop := func() error {
			if stopped {
				return nil
			}
			stopped = true
			cancel()
			return <-done
		}
		t.Cleanup(func() { stop() })
		return eps, stop
	case err := <-done:
		cancel()
		t.Fatalf("Run before ready: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("mon not ready after 30s")
	}
	return nil, nil
}

func dial(t *testing.T, eps []string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func TestRunPutGetRestart(t *testing.T) {
	dir := t.TempDir()
	clientURL, err := montest.FreeURL()
	if err != nil {
		t.Fatal(err)
	}
	peerURL, err := montest.FreeURL()
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.DebugLevel)
	cfg := mon.Config{DataDir: dir, ListenClient: clientURL, ListenPeer: peerURL, Logger: zap.New(core)}

	eps, stop := startMon(t, cfg)
	if len(eps) != 1 || eps[0] != clientURL {
		t.Fatalf("ready URLs = %v, want [%s]", eps, clientURL)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cli := dial(t, eps)
	if _, err := cli.Put(ctx, "k", "v1"); err != nil {
		t.Fatal(err)
	}
	if resp, err := cli.Get(ctx, "k"); err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v1" {
		t.Fatalf("Get = %v, %v", resp, err)
	}
	cli.Close()
	if err := stop(); err != nil {
		t.Fatalf("Run after cancel = %v, want nil", err)
	}
	for _, e := range logs.All() {
		if strings.HasPrefix(e.LoggerName, "etcd") && e.Level < zapcore.WarnLevel {
			t.Fatalf("etcd logged below warn: %v %q", e.Level, e.Message)
		}
		// A clean stop logs no errors (etcd's about its own closed
		// listeners are dropped: stopCore).
		if e.Level >= zapcore.ErrorLevel {
			t.Fatalf("a clean stop logged %v %q %v", e.Level, e.Message, e.ContextMap())
		}
	}

	eps, _ = startMon(t, cfg)
	cli = dial(t, eps)
	if resp, err := cli.Get(ctx, "k"); err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v1" {
		t.Fatalf("Get after restart = %v, %v", resp, err)
	}
}

func TestDataDirInUse(t *testing.T) {
	r, err := montest.Start(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Stop()

	c, _ := montest.FreeURL()
	p, _ := montest.FreeURL()
	m, err := mon.New(mon.Config{Name: "second", DataDir: r.DataDir, ListenClient: c, ListenPeer: p, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = m.Run(ctx, func([]string) { t.Error("second mon became ready") })
	if !errors.Is(err, mon.ErrDataDirInUse) || !strings.Contains(err.Error(), r.DataDir) {
		t.Fatalf("second Run = %v, want ErrDataDirInUse naming %s", err, r.DataDir)
	}
}
