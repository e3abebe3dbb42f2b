package image

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/tsumiki-storage/tsumiki/blockdev/stripe"
)

// Size limits of an image.
const (
	// SectorSize: image sizes are multiples of it.
	SectorSize = 512
	// MaxSize is the largest image (1 EiB), far below where offsets
	// would overflow.
	MaxSize = 1 << 60
	// maxName bounds pool and image names, as pool names are bounded.
	maxName = 128
)

// FeatureExclusiveLock is set on every image: writers hold the lock.
const FeatureExclusiveLock = "exclusive-lock"

// Header is an image's record in the control plane. It is a value.
type Header struct {
	ID          string    `json:"id"` // 16 hex digits, names the data objects
	Pool        string    `json:"pool"`
	Name        string    `json:"name"`
	Size        int64     `json:"size"` // bytes
	ObjectSize  int64     `json:"object_size"`
	StripeUnit  int64     `json:"stripe_unit"`
	StripeCount int64     `json:"stripe_count"`
	Features    []string  `json:"features"`
	Created     time.Time `json:"created"`
}

// Layout is the header's striping.
func (h Header) Layout() stripe.Layout {
	return stripe.Layout{ObjectSize: h.ObjectSize, StripeUnit: h.StripeUnit, StripeCount: h.StripeCount}
}

// Spec is "pool/name".
func (h Header) Spec() string { return h.Pool + "/" + h.Name }

// ObjectCount is how many data objects the image can use at its size.
func (h Header) ObjectCount() uint64 { return stripe.ObjectCount(h.Layout(), h.Size) }

// validate checks a header read from etcd.
func (h Header) validate() error {
	if len(h.ID) != 16 {
		return fmt.Errorf("id %q is not 16 hex digits", h.ID)
	}
	if _, err := hex.DecodeString(h.ID); err != nil {
		return fmt.Errorf("id %q is not 16 hex digits", h.ID)
	}
	if err := CheckSize(h.Size); err != nil {
		return err
	}
	return h.Layout().Validate()
}

// CheckSize returns nil for a usable image size, else an error wrapping
// ErrInvalidSize that says what is allowed.
func CheckSize(size int64) error {
	switch {
	case size <= 0:
		return fmt.Errorf("%w: %d: an image needs at least %d bytes", ErrInvalidSize, size, SectorSize)
	case size%SectorSize != 0:
		return fmt.Errorf("%w: %d is not a multiple of %d bytes (round up to %d)", ErrInvalidSize, size, SectorSize, (size/SectorSize+1)*SectorSize)
	case size > MaxSize:
		return fmt.Errorf("%w: %d is above the %d-byte (1 EiB) limit", ErrInvalidSize, size, int64(MaxSize))
	}
	return nil
}

// CheckName returns nil for a usable pool or image name: 1..128 characters
// of [A-Za-z0-9._-], not "." or "..". Errors wrap ErrInvalid.
func CheckName(what, name string) error {
	if name == "" || len(name) > maxName || name == "." || name == ".." {
		return fmt.Errorf("%w: %s name %q: use 1..%d characters of A-Z a-z 0-9 . _ -", ErrInvalid, what, name, maxName)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("%w: %s name %q: %q is not allowed; use A-Z a-z 0-9 . _ -", ErrInvalid, what, name, r)
		}
	}
	return nil
}

// newID returns a random image id.
func newID() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("image: new id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// decodeHeader parses a stored header.
func decodeHeader(key string, value []byte) (Header, error) {
	var h Header
	if err := json.Unmarshal(value, &h); err != nil {
		return Header{}, fmt.Errorf("%w: %s: %v; restore it from a backup (etcdctl snapshot) or remove it with etcdctl del", ErrCorrupt, key, err)
	}
	if err := h.validate(); err != nil {
		return Header{}, fmt.Errorf("%w: %s: %v; restore it from a backup (etcdctl snapshot) or remove it with etcdctl del", ErrCorrupt, key, err)
	}
	return h, nil
}
