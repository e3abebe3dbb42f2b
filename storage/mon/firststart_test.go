package mon

import (
	"os"
	"path/filepath"
	"testing"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/server/v3/storage/wal"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
)

// cutFirstStart leaves in dir what etcd's first start leaves when it is cut
// right after it made its WAL (metadata and the zero snapshot record, as
// wal.Create writes them), before the bootstrap's membership entries: with
// hs, it also saves that hard state, and with ents that many entries.
func cutFirstStart(t *testing.T, dir string, hs *raftpb.HardState, ents int) {
	t.Helper()
	member := filepath.Join(dir, "member")
	if err := os.MkdirAll(filepath.Join(member, "snap"), 0o700); err != nil {
		t.Fatal(err)
	}
	md, err := proto.Marshal(&etcdserverpb.Metadata{NodeID: proto.Uint64(0xf41271ef915d4792), ClusterID: proto.Uint64(0x1c4b5b2c0b0e3f10)})
	if err != nil {
		t.Fatal(err)
	}
	w, err := wal.Create(zap.NewNop(), filepath.Join(member, "wal"), md)
	if err != nil {
		t.Fatal(err)
	}
	var es []*raftpb.Entry
	for i := range ents {
		es = append(es, &raftpb.Entry{Term: proto.Uint64(1), Index: proto.Uint64(uint64(i + 1)), Type: raftpb.EntryType_EntryConfChange.Enum()})
	}
	if hs == nil {
		hs = &raftpb.HardState{}
	}
	if err := w.Save(hs, es); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestClearCutFirstStart(t *testing.T) {
	for _, tc := range []struct {
		name    string
		prepare func(t *testing.T, dir string)
		removed bool
	}{
		{"fresh folder", func(*testing.T, string) {}, false},
		{"cut before anything was saved", func(t *testing.T, dir string) { cutFirstStart(t, dir, nil, 0) }, true},
		{"a commit index", func(t *testing.T, dir string) {
			cutFirstStart(t, dir, &raftpb.HardState{Term: proto.Uint64(1), Commit: proto.Uint64(1)}, 1)
		}, false},
		{"a vote, nothing committed (a joining member)", func(t *testing.T, dir string) {
			cutFirstStart(t, dir, &raftpb.HardState{Term: proto.Uint64(2), Vote: proto.Uint64(7)}, 0)
		}, false},
		{"an entry, nothing committed", func(t *testing.T, dir string) { cutFirstStart(t, dir, nil, 1) }, false},
		{"a snapshot", func(t *testing.T, dir string) {
			cutFirstStart(t, dir, nil, 0)
			if err := os.WriteFile(filepath.Join(dir, "member", "snap", "0000000000000001-0000000000000005.snap"), []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"an unreadable WAL", func(t *testing.T, dir string) {
			if err := os.MkdirAll(filepath.Join(dir, "member", "wal"), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "member", "wal", "0000000000000000-0000000000000000.wal"), []byte("not a wal"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.prepare(t, dir)
			_, statErr := os.Stat(filepath.Join(dir, "member"))
			if err := clearCutFirstStart(dir, zap.NewNop()); err != nil {
				t.Fatal(err)
			}
			_, err := os.Stat(filepath.Join(dir, "member"))
			if removed := statErr == nil && os.IsNotExist(err); removed != tc.removed {
				t.Fatalf("member folder removed = %v, want %v", removed, tc.removed)
			}
		})
	}
}

// CutFirstStart is cutFirstStart for package mon_test.
var CutFirstStart = cutFirstStart
