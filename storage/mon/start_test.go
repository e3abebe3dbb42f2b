package mon_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/tsumiki-storage/tsumiki/storage/mon"
	"github.com/tsumiki-storage/tsumiki/storage/mon/montest"
)

// TestRunAfterCutFirstStart: a mon whose first start was cut before it
// saved anything comes up (etcd alone waits for ever) and works.
func TestRunAfterCutFirstStart(t *testing.T) {
	dir := t.TempDir()
	mon.CutFirstStart(t, dir, nil, 0)
	startMon(t, mon.Config{DataDir: dir, ListenClient: freeURL(t), ListenPeer: freeURL(t), Logger: zap.NewNop(), ReadyTimeout: 20 * time.Second})
}

// TestRunNeverReady: a member that cannot get ready (a new cluster of two
// with the other member absent: no quorum) returns ErrNotReady after
// ReadyTimeout, and one stopped (Ctrl-C) before it got ready returns nil;
// neither hangs in etcd's Close.
func TestRunNeverReady(t *testing.T) {
	for _, cancelFirst := range []bool{false, true} {
		peer := freeURL(t)
		m, err := mon.New(mon.Config{DataDir: t.TempDir(), Name: "a", ListenClient: freeURL(t), ListenPeer: peer,
			InitialCluster: "a=" + peer + ",b=" + freeURL(t), Logger: zap.NewNop(), ReadyTimeout: 3 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- m.Run(ctx, func([]string) { t.Error("ready without a quorum") }) }()
		if cancelFirst {
			time.Sleep(time.Second)
			cancel()
		}
		select {
		case err := <-done:
			if cancelFirst && err != nil || !cancelFirst && !errors.Is(err, mon.ErrNotReady) {
				t.Fatalf("cancel first %v: Run = %v", cancelFirst, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("cancel first %v: Run still running 30 s on (ReadyTimeout 3 s)", cancelFirst)
		}
		cancel()
	}
}

func freeURL(t *testing.T) string {
	t.Helper()
	u, err := montest.FreeURL()
	if err != nil {
		t.Fatal(err)
	}
	return u
}
