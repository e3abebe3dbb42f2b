package clustermap_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tsumiki-storage/tsumiki/storage/clustermap"
)

// TestAnnounce: an announcement is listed while its announcer runs and
// gone once it stops; a new announcement of the same kind and host
// replaces the old one; bad names are refused.
func TestAnnounce(t *testing.T) {
	s, _ := newStore(t)
	services := func() []clustermap.Service {
		t.Helper()
		svcs, err := s.Services(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		return svcs
	}
	announce := func(svc clustermap.Service) (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Announce(ctx, svc, 2*time.Second) }()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Announce returned %v", err)
			}
		}
	}

	stopNBD := announce(clustermap.Service{Kind: "nbd", Host: "h1", Running: true, Addr: "127.0.0.1:10809"})
	stopNFS := announce(clustermap.Service{Kind: "nfs", Host: "h1", Reason: "no nbd module"})
	waitFor(t, "two services", func() bool { return len(services()) == 2 })
	got := services()
	if got[0].Kind != "nbd" || !got[0].Running || got[0].Addr != "127.0.0.1:10809" || got[0].Since.IsZero() {
		t.Fatalf("first service %+v", got[0])
	}
	if got[1].Kind != "nfs" || got[1].Running || got[1].Reason != "no nbd module" {
		t.Fatalf("second service %+v", got[1])
	}

	stopNFS()
	stopNFS = announce(clustermap.Service{Kind: "nfs", Host: "h1", Running: true, Addr: "127.0.0.1:2049"})
	waitFor(t, "nfs running", func() bool {
		svcs := services()
		return len(svcs) == 2 && svcs[1].Running && svcs[1].Addr == "127.0.0.1:2049"
	})
	stopNFS()
	stopNBD()
	waitFor(t, "no services after the announcers stopped", func() bool { return len(services()) == 0 })

	for _, bad := range []clustermap.Service{{Kind: "", Host: "h"}, {Kind: "nfs", Host: ""}, {Kind: "nfs", Host: "a/b"}} {
		if err := s.Announce(testCtx(t), bad, time.Second); !errors.Is(err, clustermap.ErrInvalid) {
			t.Errorf("Announce(%+v) = %v, want ErrInvalid", bad, err)
		}
	}
}
