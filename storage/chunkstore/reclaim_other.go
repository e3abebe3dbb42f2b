//go:build !linux

package chunkstore

import "context"

// RunReclaim is a no-op outside Linux; it returns when ctx is done.
func (s *Store) RunReclaim(ctx context.Context) error {
	<-ctx.Done()
	return nil
}
