package chunkstore

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestConfigValidate(t *testing.T) {
	ok := Config{Dir: "/x", Logger: zap.NewNop()}
	for _, tc := range []struct {
		name  string
		mod   func(c *Config)
		nerrs int // broken rules reported; 0 = valid
	}{
		{"defaults", func(c *Config) {}, 0},
		{"min block", func(c *Config) { c.BlockSize = 4 << 10 }, 0},
		{"max block", func(c *Config) { c.BlockSize = 1 << 20 }, 0},
		{"block too small", func(c *Config) { c.BlockSize = 2 << 10 }, 1},
		{"block too big", func(c *Config) { c.BlockSize = 2 << 20 }, 1},
		{"block not power of two", func(c *Config) { c.BlockSize = 12 << 10 }, 1},
		{"negative block", func(c *Config) { c.BlockSize = -4096 }, 1},
		{"no dir", func(c *Config) { c.Dir = "" }, 1},
		{"no logger", func(c *Config) { c.Logger = nil }, 1},
		{"nothing", func(c *Config) { *c = Config{} }, 2},
		{"small memtable", func(c *Config) { c.MemTableSize = 512 << 10 }, 1},
		{"threshold above txn", func(c *Config) { c.MemTableSize = 1 << 20; c.ValueThreshold = 200 << 10 }, 1},
		{"threshold above 1 MiB", func(c *Config) { c.MemTableSize = 64 << 20; c.ValueThreshold = 2 << 20 }, 1},
		{"negative threshold", func(c *Config) { c.ValueThreshold = -1 }, 1},
		{"small vlog", func(c *Config) { c.ValueLogFileSize = 512 << 10 }, 1},
		{"huge vlog", func(c *Config) { c.ValueLogFileSize = 2 << 30 }, 1},
		{"negative caches", func(c *Config) { c.BlockCacheSize, c.IndexCacheSize = -1, -1 }, 2},
		{"discard ratio 1", func(c *Config) { c.GCDiscardRatio = 1 }, 1},
		{"negative discard ratio", func(c *Config) { c.GCDiscardRatio = -0.5 }, 1},
		{"negative interval", func(c *Config) { c.GCInterval = -time.Second }, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.mod(&c)
			err := c.withDefaults().Validate()
			if tc.nerrs == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("Validate = %v, want ErrConfig", err)
			}
			if n := len(err.(interface{ Unwrap() []error }).Unwrap()); n != tc.nerrs {
				t.Fatalf("Validate reported %d errors, want %d: %v", n, tc.nerrs, err)
			}
			if _, err := Open(c); !errors.Is(err, ErrConfig) {
				t.Fatalf("Open = %v, want ErrConfig", err)
			}
		})
	}
}

func TestBlockSizeIsPersisted(t *testing.T) {
	cfg := testConfig(t)
	s := openStore(t, cfg)
	if s.BlockSize() != 4<<10 {
		t.Fatalf("BlockSize = %d", s.BlockSize())
	}
	commit(t, s, func(b *Batch) error { return b.Write(pg1, "o", 0, []byte("x"), 1) })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, bs := range []int{16 << 10, 8 << 10} {
		c := cfg
		c.BlockSize = bs
		_, err := Open(c)
		wantErr(t, err, ErrConfig)
	}
	s = openStore(t, cfg) // the refused opens released the directory
	checkObject(t, s, pg1, "o", []byte("x"), 1)
}

func TestLocked(t *testing.T) {
	cfg := testConfig(t)
	s := openStore(t, cfg)
	_, err := Open(cfg)
	wantErr(t, err, ErrLocked)
	if !strings.Contains(err.Error(), "another process") {
		t.Errorf("error %q does not say another process uses the directory", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	openStore(t, cfg)
}

// TestLockedByBadger: a process that opened the badger database without
// this package (a badger tool) holds only badger's lock.
func TestLockedByBadger(t *testing.T) {
	cfg := testConfig(t)
	db, err := badger.Open(badger.DefaultOptions(filepath.Join(cfg.Dir, "meta")).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, err = Open(cfg)
	wantErr(t, err, ErrLocked)
	if !strings.Contains(err.Error(), "another process") {
		t.Errorf("error %q does not say another process uses the directory", err)
	}
}

func TestClosed(t *testing.T) {
	s := openStore(t, testConfig(t))
	commit(t, s, func(b *Batch) error { return b.Write(pg1, "o", 0, []byte("x"), 1) })
	pending := s.NewBatch()
	if err := pending.Write(pg1, "o", 0, []byte("y"), 2); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	wantErr(t, pending.Commit(), ErrClosed)
	pending.Discard()
	_, err := s.Stat(pg1, "o")
	wantErr(t, err, ErrClosed)
	wantErr(t, s.Read(pg1, "o", 0, make([]byte, 1)), ErrClosed)
	_, err = s.List(pg1, "", "", 0)
	wantErr(t, err, ErrClosed)
	_, err = s.ListPGs()
	wantErr(t, err, ErrClosed)
	_, err = s.LoadRaft(pg1)
	wantErr(t, err, ErrClosed)
	_, err = s.Entries(pg1, 1, 2, 0)
	wantErr(t, err, ErrClosed)
	_, _, _, err = s.Digest(pg1)
	wantErr(t, err, ErrClosed)
	b := s.NewBatch()
	if err := b.Write(pg1, "o", 0, []byte("x"), 1); err != nil {
		t.Fatal(err)
	}
	wantErr(t, b.Commit(), ErrClosed)
	_, err = s.gcRound(context.Background())
	wantErr(t, err, ErrClosed)
}

func TestRunGC(t *testing.T) {
	cfg := testConfig(t)
	cfg.ValueLogFileSize = 1 << 20
	cfg.GCInterval = 10 * time.Millisecond
	s := openStore(t, cfg)
	for i := range 50 { // overwrites leave garbage in several value-log files
		commit(t, s, func(b *Batch) error { return b.Write(pg1, "o", 0, pattern(byte(i), 64<<10), uint64(i)) })
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.RunGC(ctx) }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("RunGC = %v, want nil after cancel", err)
	}
	checkObject(t, s, pg1, "o", pattern(49, 64<<10), 49)
	if used := s.UsedBytes(); used < 64<<10 {
		t.Fatalf("UsedBytes = %d, want at least the object", used)
	}
}

func TestBadgerLogRouting(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	bl := badgerLogger{zap.New(core).Sugar()}
	bl.Debugf("debug %d\n", 1)
	bl.Infof("info %d\n", 2)
	bl.Warningf("warn %d\n", 3)
	bl.Errorf("error %d\n", 4)
	var got []string
	for _, e := range logs.All() {
		got = append(got, e.Level.String()+" "+e.Message)
	}
	if want := "warn badger: warn 3|error badger: error 4"; strings.Join(got, "|") != want {
		t.Fatalf("logged %q, want %q", got, want)
	}
}

// TestDeps: the chunk store keeps raft bytes opaque and does not import raft.
func TestDeps(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "go.etcd.io/raft") || strings.HasPrefix(dep, "github.com/tsumiki-storage/tsumiki/") &&
			dep != "github.com/tsumiki-storage/tsumiki/storage/chunkstore" && dep != "github.com/tsumiki-storage/tsumiki/storage/wal" {
			t.Errorf("chunkstore depends on %s", dep)
		}
	}
}
