package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/tsumiki-storage/tsumiki/blockdev/stripe"
	"github.com/tsumiki-storage/tsumiki/storage/client"
)

// Store creates, lists, opens and removes the images of a cluster. It is
// safe for concurrent use, holds no state of its own besides its Config
// and starts no goroutines.
type Store struct {
	cfg  Config
	cli  *clientv3.Client
	objs ObjectIO
	log  *zap.Logger
}

// NewStore returns a Store, or an error wrapping ErrInvalid for a bad
// config.
func NewStore(cfg Config) (*Store, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Store{cfg: cfg, cli: cfg.Etcd, objs: cfg.Objects, log: cfg.Logger}, nil
}

// Holder is how this Store describes itself in the locks it takes (Since
// aside, which is set per lock).
func (s *Store) Holder() Holder { return s.cfg.Holder }

func (s *Store) imagesPrefix() string               { return s.cfg.Prefix + "/images/" }
func (s *Store) headerKey(pool, name string) string { return s.imagesPrefix() + pool + "/" + name }
func (s *Store) lockKey(pool, name string) string {
	return s.cfg.Prefix + "/locks/" + pool + "/" + name
}

// CreateOptions describe a new image.
type CreateOptions struct {
	Pool, Name string
	Size       int64         // bytes; see CheckSize
	Layout     stripe.Layout // zero fields take stripe's defaults
}

// Create records a new, empty image and returns its header. Nothing is
// written to the pool: the image is thin. It checks that the pool exists.
//
// Errors wrap ErrInvalid (name, layout), ErrInvalidSize, ErrExists,
// client.ErrNoPool, or are the control plane's or the pool's.
func (s *Store) Create(ctx context.Context, o CreateOptions) (Header, error) {
	op := fmt.Sprintf("image: create %s/%s", o.Pool, o.Name)
	if err := errors.Join(CheckName("pool", o.Pool), CheckName("image", o.Name)); err != nil {
		return Header{}, err
	}
	if err := CheckSize(o.Size); err != nil {
		return Header{}, err
	}
	l := o.Layout.WithDefaults()
	if err := l.Validate(); err != nil {
		return Header{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	id, err := newID()
	if err != nil {
		return Header{}, err
	}
	// The pool must exist; object 0 of a fresh id must not.
	if _, err := s.objs.Stat(ctx, o.Pool, ObjectName(id, 0)); !errors.Is(err, client.ErrNotFound) {
		if err == nil {
			err = fmt.Errorf("%w: object %s exists already", ErrExists, ObjectName(id, 0))
		}
		return Header{}, fmt.Errorf("%s: %w", op, err)
	}
	h := Header{ID: id, Pool: o.Pool, Name: o.Name, Size: o.Size, ObjectSize: l.ObjectSize, StripeUnit: l.StripeUnit,
		StripeCount: l.StripeCount, Features: []string{FeatureExclusiveLock}, Created: s.cfg.Now().UTC().Truncate(time.Second)}
	value, err := json.Marshal(h)
	if err != nil {
		return Header{}, fmt.Errorf("%s: %w", op, err)
	}
	key := s.headerKey(o.Pool, o.Name)
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(value))).
		Commit()
	if err != nil {
		return Header{}, fmt.Errorf("%s: write %s: %w", op, key, err)
	}
	if !resp.Succeeded {
		return Header{}, fmt.Errorf("%w: %s/%s", ErrExists, o.Pool, o.Name)
	}
	s.log.Info("image created", zap.String("image", h.Spec()), zap.String("id", id), zap.Int64("size", h.Size))
	return h, nil
}

// Info returns the header of pool/name. Errors wrap ErrNotFound,
// ErrCorrupt, or are the control plane's.
func (s *Store) Info(ctx context.Context, pool, name string) (Header, error) {
	h, _, err := s.header(ctx, pool, name)
	return h, err
}

// header reads pool/name's header and its ModRevision.
func (s *Store) header(ctx context.Context, pool, name string) (Header, int64, error) {
	if err := errors.Join(CheckName("pool", pool), CheckName("image", name)); err != nil {
		return Header{}, 0, err
	}
	key := s.headerKey(pool, name)
	resp, err := s.cli.Get(ctx, key)
	if err != nil {
		return Header{}, 0, fmt.Errorf("image: read %s: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return Header{}, 0, fmt.Errorf("%w: %s/%s", ErrNotFound, pool, name)
	}
	h, err := decodeHeader(key, resp.Kvs[0].Value)
	return h, resp.Kvs[0].ModRevision, err
}

// List returns the headers of pool's images ("" means every pool), sorted
// by pool and name. Errors wrap ErrCorrupt or are the control plane's.
func (s *Store) List(ctx context.Context, pool string) ([]Header, error) {
	prefix := s.imagesPrefix()
	if pool != "" {
		if err := CheckName("pool", pool); err != nil {
			return nil, err
		}
		prefix += pool + "/"
	}
	resp, err := s.cli.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("image: list %s: %w", prefix, err)
	}
	out := make([]Header, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		h, err := decodeHeader(string(kv.Key), kv.Value)
		if err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Pool != out[j].Pool {
			return out[i].Pool < out[j].Pool
		}
		return strings.Compare(out[i].Name, out[j].Name) < 0
	})
	return out, nil
}
