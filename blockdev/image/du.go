package image

import (
	"context"
	"fmt"
)

// Usage is how much space an image takes.
type Usage struct {
	Provisioned int64 `json:"provisioned"` // the image size
	// Used is the sum of the sizes of its data objects: the bytes up to
	// the last write in each object. Ranges zeroed inside an object are
	// counted (the object store reports sizes, not allocated blocks).
	Used    int64 `json:"used"`
	Objects int   `json:"objects"` // data objects that exist
}

// Du returns pool/name's header and usage. It lists the image's objects
// (one pass over the pool's placement groups), so it takes no lock and
// runs concurrently with writers, whose latest writes it may or may not
// count. Errors wrap ErrNotFound or are the control plane's or the object
// store's.
func (s *Store) Du(ctx context.Context, pool, name string) (Header, Usage, error) {
	h, err := s.Info(ctx, pool, name)
	if err != nil {
		return Header{}, Usage{}, err
	}
	objs, err := s.objs.List(ctx, pool, objectPrefix(h.ID))
	if err != nil {
		return Header{}, Usage{}, fmt.Errorf("image: du %s: %w", h.Spec(), err)
	}
	u := Usage{Provisioned: h.Size, Objects: len(objs)}
	for _, o := range objs {
		u.Used += o.Size
	}
	return h, u, nil
}
