package osd

import (
	"context"
	"errors"
	"fmt"

	"go.uber.org/zap"

	"github.com/tsumiki-storage/tsumiki/storage/chunkstore"
)

// Copying a PG for a snapshot install (snapshot.go,
// docs/design-replica-moves.md). The replica that installs calls its
// PGCopier, which reads the PG from the OSD that sent the snapshot; that
// OSD serves it with Node.CopyOut.

// CopiedObject is one object of a PG as its source holds it: its whole
// content (holes as zeros), size and version, and the ranges of it the
// source holds damaged (zeros in Data), which the copy marks damaged too.
type CopiedObject struct {
	Name    string
	Size    int64
	Version uint64
	Damaged []chunkstore.Range // in order, within Size
	Data    []byte             // len(Data) == Size; owned by the callee once given
}

// PGCopier copies a PG from another OSD for this one to install. The
// consumer of a copy (the installing node) declares it; a daemon's is its
// cluster-network client, a test's reads another node directly.
type PGCopier interface {
	// CopyPG calls put with every object of pg as OSD from holds it while
	// it is read (Node.CopyOut, whose errors it returns), one at a time,
	// and returns from's applied index once the last object was read.
	// It stops at put's first error and returns it.
	CopyPG(ctx context.Context, from int32, pg PG, min uint64, put func(CopiedObject) error) (through uint64, err error)
}

// copyPage is how many names CopyOut lists at a time.
const copyPage = 256

// CopyOut gives put every object of this OSD's replica of pg, read as it
// is now: a fuzzy copy, each object at some index at least min (the
// snapshot's, which this replica must have applied) and no older than the
// ones before it. It returns the applied index once the last object was
// read (at least: a batch's changes reach the store before applied moves,
// so it is the index staged last, and no less than this replica's own
// hold): the installing replica's state mixes times until it has applied
// that far. Objects deleted while the copy runs are skipped; the log
// replayed after the snapshot deletes them anyway. The bytes read are
// paced by NodeConfig.CopyRate, all copies together. Any goroutine; it
// does not hold up the loop. Errors: ErrNoPG, ErrInstalling (this replica is
// installing itself, or has not applied min), chunkstore errors, put's. A
// damaged block is not an error: it is copied as damage (CopiedObject),
// never as data, and the copy's replica holds it damaged too, as pg verify
// then reports, until the object's next whole-block write there.
func (n *Node) CopyOut(ctx context.Context, pg PG, min uint64, put func(CopiedObject) error) (uint64, error) {
	r := n.lookup(pg)
	if r == nil {
		return 0, ErrNoPG
	}
	if r.frozen.Load() || r.applied.Load() < min {
		return 0, fmt.Errorf("%w: osd.%d has applied pg %s to %d, not %d", ErrInstalling, n.cfg.ID, pg, r.applied.Load(), min)
	}
	st := n.cfg.Store
	after := ""
	for {
		infos, err := st.List(pg, "", after, copyPage)
		if err != nil {
			return 0, err
		}
		for _, in := range infos {
			if err := ctx.Err(); err != nil {
				return 0, ErrTimeout
			}
			r.copyAt.Store(n.cfg.Clock.Now().UnixNano())
			// The size and version List gave: an object changed since is
			// replayed anyway (see above), so a Stat would only cost a
			// meta read per object.
			if n.copyRate != nil {
				if err := n.copyRate.WaitN(ctx, int(max(in.Size, 1))); err != nil {
					return 0, ErrTimeout
				}
			}
			data := make([]byte, in.Size)
			damaged, err := st.ReadSkippingDamage(pg, in.Name, data)
			if errors.Is(err, chunkstore.ErrNotFound) {
				continue
			}
			if err != nil {
				return 0, fmt.Errorf("copy %q of pg %s: %w", in.Name, pg, err)
			}
			if len(damaged) > 0 {
				n.log.Warn("copying an object with damaged blocks: the copy marks them damaged too",
					zap.Stringer("pg", pg), zap.String("object", in.Name), zap.Int("ranges", len(damaged)))
			}
			if err := put(CopiedObject{Name: in.Name, Size: in.Size, Version: in.Version, Damaged: damaged, Data: data}); err != nil {
				return 0, err
			}
		}
		if len(infos) < copyPage {
			break
		}
		after = infos[len(infos)-1].Name
	}
	if cur := n.lookup(pg); cur != r || r.frozen.Load() {
		return 0, fmt.Errorf("%w: the replica of pg %s on osd.%d was reloaded during the copy", ErrInstalling, pg, n.cfg.ID)
	}
	return max(r.staged.Load(), r.readHold.Load()), nil
}
