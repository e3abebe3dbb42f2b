package chunkstore

import (
	"context"
	"errors"
	"time"

	"github.com/dgraph-io/badger/v4"
	"go.uber.org/zap"
)

// maxGCPerRound bounds the value-log files rewritten in one GC round, so a
// round's IO stays bounded.
const maxGCPerRound = 8

// RunGC runs value-log garbage collection every GCInterval until ctx is done,
// then returns nil. Each round rewrites value-log files whose garbage ratio
// reaches GCDiscardRatio, one at a time, until badger reports nothing to do
// or maxGCPerRound files. It returns ErrClosed if the store is closed while
// it runs (cancel ctx before Close). GC errors are logged, not returned.
//
// It reads the wall clock through time.Ticker: GC timing is not a decision
// that tests simulate.
func (s *Store) RunGC(ctx context.Context) error {
	t := time.NewTicker(s.cfg.GCInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if _, err := s.gcRound(ctx); err != nil {
			return err
		}
	}
}

// gcRound runs one GC round and returns how many files it rewrote.
func (s *Store) gcRound(ctx context.Context) (int, error) {
	n := 0
	for n < maxGCPerRound && ctx.Err() == nil {
		if err := s.enter(); err != nil {
			return n, err
		}
		err := s.db.RunValueLogGC(s.cfg.GCDiscardRatio)
		s.leave()
		switch {
		case err == nil:
			n++
		case errors.Is(err, badger.ErrNoRewrite), errors.Is(err, badger.ErrRejected):
			return n, nil
		default:
			s.log.Warn("chunkstore: value-log GC failed", zap.String("dir", s.cfg.Dir), zap.Error(err))
			return n, nil
		}
	}
	return n, nil
}
