package image

import (
	"context"
	"errors"
	"testing"

	"github.com/tsumiki-storage/tsumiki/blockdev/stripe"
	"github.com/tsumiki-storage/tsumiki/storage/client"
)

// TestImageCreateInfoList: create records a header that Info and List
// return; it writes nothing to the pool; every bad input is refused with
// its own sentinel and leaves nothing behind.
func TestImageCreateInfoList(t *testing.T) {
	e := newEnv(t)
	s := e.store(t, "test")
	ctx := context.Background()
	a := e.create(t, s, "a", 10<<20, stripe.Layout{})
	b := e.create(t, s, "b", 1<<20, stripe.Layout{ObjectSize: 64 << 10, StripeUnit: 16 << 10, StripeCount: 4})
	if a.ObjectSize != stripe.DefaultObjectSize || a.StripeUnit != a.ObjectSize || a.StripeCount != 1 || len(a.ID) != 16 {
		t.Fatalf("defaults not applied: %+v", a)
	}
	got, err := s.Info(ctx, "rbd", "b")
	if err != nil || got.ID != b.ID || got.Size != 1<<20 || got.Layout() != b.Layout() || !got.Created.Equal(b.Created) {
		t.Fatalf("Info = %+v, %v; want %+v", got, err, b)
	}
	for _, pool := range []string{"rbd", ""} {
		list, err := s.List(ctx, pool)
		if err != nil || len(list) != 2 || list[0].Name != "a" || list[1].Name != "b" {
			t.Fatalf("List(%q) = %+v, %v", pool, list, err)
		}
	}
	if n := len(e.objs.Objects("rbd", "")); n != 0 {
		t.Fatalf("create wrote %d objects; images are thin", n)
	}

	for _, tc := range []struct {
		name string
		o    CreateOptions
		want error
	}{
		{"exists", CreateOptions{Pool: "rbd", Name: "a", Size: 1 << 20}, ErrExists},
		{"size 0", CreateOptions{Pool: "rbd", Name: "c", Size: 0}, ErrInvalidSize},
		{"negative size", CreateOptions{Pool: "rbd", Name: "c", Size: -512}, ErrInvalidSize},
		{"not sectors", CreateOptions{Pool: "rbd", Name: "c", Size: 1000}, ErrInvalidSize},
		{"too large", CreateOptions{Pool: "rbd", Name: "c", Size: MaxSize + 512}, ErrInvalidSize},
		{"bad name", CreateOptions{Pool: "rbd", Name: "a/b", Size: 1 << 20}, ErrInvalid},
		{"empty name", CreateOptions{Pool: "rbd", Name: "", Size: 1 << 20}, ErrInvalid},
		{"bad layout", CreateOptions{Pool: "rbd", Name: "c", Size: 1 << 20, Layout: stripe.Layout{ObjectSize: 3 << 20}}, stripe.ErrInvalid},
		{"no pool", CreateOptions{Pool: "nopool", Name: "c", Size: 1 << 20}, client.ErrNoPool},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.Create(ctx, tc.o); !errors.Is(err, tc.want) {
				t.Fatalf("Create(%+v) = %v, want %v", tc.o, err, tc.want)
			}
		})
	}
	if list, _ := s.List(ctx, ""); len(list) != 2 {
		t.Fatalf("bad creates left images behind: %+v", list)
	}
	if got, _ := s.Info(ctx, "rbd", "a"); got.ID != a.ID {
		t.Fatalf("creating an existing image changed it: %+v", got)
	}
	if _, err := s.Info(ctx, "rbd", "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Info of a missing image: %v", err)
	}
	if _, err := s.Open(ctx, "rbd", "nope", OpenOptions{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Open of a missing image: %v", err)
	}
}

// TestImageConfigValidate: each broken rule gives its own error.
func TestImageConfigValidate(t *testing.T) {
	err := Config{LockTTL: -1, MaxInFlight: -1}.Validate()
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("Validate = %v", err)
	}
	if n := len(err.(interface{ Unwrap() []error }).Unwrap()); n != 4 {
		t.Fatalf("Validate reported %d problems, want 4:\n%v", n, err)
	}
	if _, err := NewStore(Config{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("NewStore with no etcd and no objects: %v", err)
	}
}
