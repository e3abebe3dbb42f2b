package clustermap_test

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/tsumiki-storage/tsumiki/storage/clustermap"
	"github.com/tsumiki-storage/tsumiki/storage/mon/montest"
)

// waitFor polls cond every 20ms for up to 10s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func isUp(t *testing.T, s *clustermap.Store, id int32) bool {
	o, ok := mustLoad(t, s).OSD(id)
	return ok && o.Up
}

func TestKeepAlive(t *testing.T) {
	s, _ := newStore(t)
	o := mustRegister(t, s, osd("u0", "h0"))
	if isUp(t, s, o.ID) {
		t.Fatal("osd up before KeepAlive")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.KeepAlive(ctx, o.ID, 2*time.Second) }()
	waitFor(t, "osd up", func() bool { return isUp(t, s, o.ID) })

	// Stays up past the TTL: the lease is renewed.
	time.Sleep(3 * time.Second)
	if !isUp(t, s, o.ID) {
		t.Fatal("osd went down while kept alive")
	}
	epoch := mustLoad(t, s).Epoch

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("KeepAlive after cancel = %v, want nil", err)
	}
	// Revoked on return: down at once, not after the TTL.
	if isUp(t, s, o.ID) {
		t.Fatal("osd still up right after a clean stop")
	}
	wantEpoch(t, s, epoch) // liveness does not touch the map epoch
}

// An etcd outage longer than the liveness TTL: KeepAlive announces the OSD
// again and Watch carries on, both without being restarted.
func TestSurvivesControlPlaneRestart(t *testing.T) {
	r, err := montest.Start(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Stop() })
	cli, err := clustermap.Dial(context.Background(), r.Endpoints, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	s := clustermap.NewStore(cli, "", zaptest.NewLogger(t))
	mustRegister(t, s, osd("u0", "h0"))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	kdone := make(chan error, 1)
	go func() { kdone <- s.KeepAlive(ctx, 0, time.Second) }()
	latest := make(chan *clustermap.Map, 1000)
	wdone := make(chan error, 1)
	go func() { wdone <- s.Watch(ctx, func(m *clustermap.Map) { latest <- m }) }()
	waitFor(t, "osd up", func() bool { return isUp(t, s, 0) })

	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // longer than the TTL: the client gives the lease up
	if err := r.Restart(); err != nil {
		t.Fatal(err)
	}
	t.Log("restarted")
	if err := s.SetFlag(testCtx(t), "noout", true); err != nil {
		t.Fatal(err)
	}
	t.Log("flag set")
	waitFor(t, "Watch to deliver the flag with osd.0 up", func() bool {
		for {
			select {
			case m := <-latest:
				if o, _ := m.OSD(0); m.HasFlag("noout") && o.Up {
					return true
				}
			default:
				return false
			}
		}
	})
	cancel()
	if err := <-kdone; err != nil {
		t.Fatal(err)
	}
	if err := <-wdone; err != nil {
		t.Fatal(err)
	}
}

// TestSetFull: fullness rides on the liveness key: Load and Watch see it,
// it survives a lease renewal, and it clears.
func TestSetFull(t *testing.T) {
	s, _ := newStore(t)
	o := mustRegister(t, s, osd("f0", "h0"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := s.SetFull(ctx, o.ID, true); err != nil { // before the lease: remembered
		t.Fatal(err)
	}
	go s.KeepAlive(ctx, o.ID, 2*time.Second)
	isFull := func() bool { x, ok := mustLoad(t, s).OSD(o.ID); return ok && x.Up && x.Full }
	waitFor(t, "osd up and full", isFull)
	watched := make(chan bool, 16)
	go s.Watch(ctx, func(m *clustermap.Map) {
		x, _ := m.OSD(o.ID)
		watched <- x.Full
	})
	if !<-watched {
		t.Fatal("watch does not show the osd full")
	}
	if err := s.SetFull(ctx, o.ID, false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "osd not full", func() bool { return !isFull() })
	for full := range watched {
		if !full {
			break // the watch saw it clear
		}
	}
}
