package attach

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"
)

// TestStateStale: a record whose process is gone or whose device is not
// connected is dropped by Load.
func TestStateStale(t *testing.T) {
	dir := t.TempDir()
	if err := Save(dir, Record{Device: "/dev/nbd7", Image: "rbd/a", PID: os.Getpid(), Since: time.Now()}); err != nil {
		t.Fatal(err)
	}
	recs, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if Connected("/dev/nbd7") {
		t.Skip("this host has a connected /dev/nbd7")
	}
	if len(recs) != 0 {
		t.Fatalf("Load = %v, want the unconnected record dropped", recs)
	}
	if _, err := os.Stat(recordPath(dir, "/dev/nbd7")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stale record kept: %v", err)
	}
}

// TestCheckSaysWhatIsMissing: on a host without the nbd module (this
// one's kernel has none) or without root, Check names what is missing.
func TestCheckSaysWhatIsMissing(t *testing.T) {
	err := Check(context.Background())
	switch {
	case err == nil:
		t.Skip("this host can map NBD devices; the kernel tests cover it")
	case os.Geteuid() != 0:
		if !errors.Is(err, ErrNotRoot) {
			t.Fatalf("Check as non-root = %v, want ErrNotRoot", err)
		}
	case !errors.Is(err, ErrNoModule):
		t.Fatalf("Check = %v, want ErrNoModule", err)
	}
	t.Log(err)
}
