package clustermap_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tsumiki-storage/tsumiki/storage/clustermap"
)

func TestWatch(t *testing.T) {
	s, _ := newStore(t)
	mustRegister(t, s, osd("u0", "h0"))

	ctx, cancel := context.WithCancel(context.Background())
	maps := make(chan *clustermap.Map, 100)
	done := make(chan error, 1)
	go func() { done <- s.Watch(ctx, func(m *clustermap.Map) { maps <- m }) }()
	next := func(what string, ok func(*clustermap.Map) bool) {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case m := <-maps:
				if ok(m) {
					return
				}
			case <-timeout:
				t.Fatalf("Watch never delivered %s", what)
			}
		}
	}
	next("the current map", func(m *clustermap.Map) bool { return m.Epoch == 1 })

	if err := s.SetFlag(testCtx(t), "noout", true); err != nil {
		t.Fatal(err)
	}
	next("the flag", func(m *clustermap.Map) bool { return m.Epoch == 2 && m.HasFlag("noout") })

	kctx, kcancel := context.WithCancel(context.Background())
	kdone := make(chan error, 1)
	go func() { kdone <- s.KeepAlive(kctx, 0, 2*time.Second) }()
	next("osd.0 up", func(m *clustermap.Map) bool { o, _ := m.OSD(0); return o.Up })

	// A burst of changes: the last map delivered has all of them.
	for range 5 {
		mustRegister(t, s, osd(time.Now().String(), "h1"))
	}
	next("the burst", func(m *clustermap.Map) bool {
		o, _ := m.OSD(0)
		return m.Epoch == 7 && len(m.OSDs) == 6 && o.Up // Up survives map rewrites
	})

	kcancel()
	<-kdone
	next("osd.0 down", func(m *clustermap.Map) bool { o, _ := m.OSD(0); return !o.Up })

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Watch after cancel = %v, want nil", err)
	}
}

func TestLoadCorrupt(t *testing.T) {
	s, cli := newStore(t)
	if _, err := cli.Put(testCtx(t), "/test/"+t.Name()+"/map", "{not json"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(testCtx(t)); !errors.Is(err, clustermap.ErrCorrupt) {
		t.Fatalf("Load = %v, want ErrCorrupt", err)
	}
	if err := s.SetFlag(testCtx(t), "noout", true); !errors.Is(err, clustermap.ErrCorrupt) {
		t.Fatalf("SetFlag = %v, want ErrCorrupt", err)
	}
}
