package mon

import (
	"fmt"
	"os"
	"path/filepath"

	"go.etcd.io/etcd/client/pkg/v3/fileutil"
	"go.etcd.io/etcd/server/v3/storage/wal"
	"go.etcd.io/etcd/server/v3/storage/wal/walpb"
	"go.etcd.io/raft/v3"
	"go.uber.org/zap"
)

// clearCutFirstStart removes dataDir's etcd member folder if it holds a
// first start that was cut short (a crash or power cut) before its WAL
// saved anything, and says so. etcd cannot restart such a member: it
// finds its WAL, so it restarts instead of bootstrapping, but the WAL
// holds no member (the bootstrap's membership entries were never
// written), so the member never elects itself and waits for ever ("failed
// to publish local member to cluster through raft"; etcd-io/etcd#12578).
//
// Removing it is safe: with no snapshot, no entry and an empty hard state
// (no term, no vote, no commit) the member never saved anything it could
// have told anyone: nothing committed (no client was answered), no vote
// cast (a member joining a running cluster may vote before it has an
// entry; forgetting that vote could elect two leaders in a term, so such
// a member is kept). The next start is the first start again. Any error
// reading the WAL leaves the folder to etcd (which reports it).
func clearCutFirstStart(dataDir string, log *zap.Logger) error {
	member := filepath.Join(dataDir, "member")
	walDir := filepath.Join(member, "wal")
	if !wal.Exist(walDir) {
		return nil
	}
	if snaps, _ := filepath.Glob(filepath.Join(member, "snap", "*.snap")); len(snaps) > 0 {
		return nil
	}
	w, err := wal.OpenForRead(log, walDir, &walpb.Snapshot{})
	if err != nil {
		return nil
	}
	_, st, ents, err := w.ReadAll()
	w.Close()
	if err != nil || !raft.IsEmptyHardState(st) || len(ents) > 0 {
		return nil
	}
	log.Warn("the control plane's first start here was cut short (a crash or power cut) before it saved anything; etcd cannot restart from that, so starting afresh",
		zap.String("removed", member))
	if err := os.RemoveAll(member); err != nil {
		return fmt.Errorf("mon: remove %s, left by a first start that was cut short: %w", member, err)
	}
	d, err := fileutil.OpenDir(dataDir)
	if err != nil {
		return err
	}
	defer d.Close()
	return fileutil.Fsync(d) // the removal is durable before etcd makes the member again
}
