package nbd

import (
	"errors"
	"fmt"
	"math/bits"
	"time"

	"go.uber.org/zap"
)

// Config configures a Server. Zero fields take the defaults listed; Opener
// and Logger are required.
type Config struct {
	// Opener resolves export names. Required.
	Opener Opener
	// Logger receives connection events (debug) and backend errors (warn).
	// Required (use zap.NewNop in tests).
	Logger *zap.Logger
	// ReadOnly opens every export read-only and advertises
	// NBD_FLAG_READ_ONLY; writes, trims and zeroes then fail with EPERM.
	ReadOnly bool
	// DefaultExport is the export a client gets when it asks for the empty
	// name. Empty: the empty name is unknown.
	DefaultExport string

	// MinBlockSize, PreferredBlockSize and MaxBlockSize are the block size
	// constraints advertised with NBD_INFO_BLOCK_SIZE; defaults 512, 4 KiB
	// and 32 MiB. Min and preferred are powers of two, min at most 64 KiB;
	// max is a multiple of min and at least preferred. Alignment to min is
	// enforced only on connections whose client asked for the constraints;
	// the max is enforced on every connection for READ and WRITE.
	MinBlockSize       uint32
	PreferredBlockSize uint32
	MaxBlockSize       uint32

	// MaxInFlight bounds the requests of one connection that are being
	// executed or whose reply is not yet sent; default 128. The server stops
	// reading the socket while the bound is reached.
	MaxInFlight int
	// MaxInFlightBytes bounds the payload bytes (write data received, read
	// data not yet sent) held for one connection; default 64 MiB, at least
	// MaxBlockSize.
	MaxInFlightBytes int64
	// StallCheck: once a connection's reader has waited this long in all
	// for room under those bounds, it reads what the client has sent so far
	// before it starts another request, and starts none if the client has
	// closed its end without NBD_CMD_DISC (stall.go); default 1s.
	// StallIdle is how long it waits for more of what the client sent;
	// default 100ms.
	StallCheck, StallIdle time.Duration

	// HandshakeTimeout bounds the whole option negotiation of a connection,
	// the Opener's calls included (their context ends then); default 30s.
	HandshakeTimeout time.Duration
	// ShutdownTimeout bounds how long a connection may take, once the
	// server's context is cancelled, to send the replies of the requests
	// already in flight; default 5s. Export calls in flight get a cancelled
	// context; one that ignores it delays the shutdown of its connection
	// until it returns.
	ShutdownTimeout time.Duration

	// FlushOnFUA makes the server call Export.Flush after every write, trim
	// or zero that has NBD_CMD_FLAG_FUA. Leave it off when the Export's
	// writes are durable when they return (tsumiki's images are); turn it on
	// for an Export that caches writes.
	FlushOnFUA bool
}

// Defaults.
const (
	DefaultMinBlockSize       = 512
	DefaultPreferredBlockSize = 4 << 10
	DefaultMaxBlockSize       = 32 << 20
	DefaultMaxInFlight        = 128
	DefaultMaxInFlightBytes   = 64 << 20
	DefaultHandshakeTimeout   = 30 * time.Second
	DefaultShutdownTimeout    = 5 * time.Second

	maxMinBlockSize = 64 << 10
	maxMaxInFlight  = 1 << 16
)

// withDefaults returns a copy of c with zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.MinBlockSize == 0 {
		c.MinBlockSize = DefaultMinBlockSize
	}
	if c.PreferredBlockSize == 0 {
		c.PreferredBlockSize = max(DefaultPreferredBlockSize, c.MinBlockSize)
	}
	if c.MaxBlockSize == 0 {
		c.MaxBlockSize = DefaultMaxBlockSize
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.MaxInFlightBytes == 0 {
		c.MaxInFlightBytes = max(DefaultMaxInFlightBytes, int64(c.MaxBlockSize))
	}
	if c.StallCheck <= 0 {
		c.StallCheck = time.Second
	}
	if c.StallIdle <= 0 {
		c.StallIdle = 100 * time.Millisecond
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	return c
}

// Validate reports every broken rule of c (after defaults) as one error
// matching ErrConfig.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...))
	}
	if c.Opener == nil {
		bad("Opener is required")
	}
	if c.Logger == nil {
		bad("Logger is required")
	}
	if !powerOfTwo(c.MinBlockSize) || c.MinBlockSize > maxMinBlockSize {
		bad("MinBlockSize %d is not a power of two up to %d", c.MinBlockSize, maxMinBlockSize)
	}
	if !powerOfTwo(c.PreferredBlockSize) || c.PreferredBlockSize < c.MinBlockSize {
		bad("PreferredBlockSize %d is not a power of two of at least MinBlockSize %d",
			c.PreferredBlockSize, c.MinBlockSize)
	}
	if (c.MinBlockSize != 0 && c.MaxBlockSize%c.MinBlockSize != 0) || c.MaxBlockSize < c.PreferredBlockSize {
		bad("MaxBlockSize %d is not a multiple of MinBlockSize %d of at least PreferredBlockSize %d",
			c.MaxBlockSize, c.MinBlockSize, c.PreferredBlockSize)
	}
	if c.MaxBlockSize > 1<<30 {
		bad("MaxBlockSize %d is larger than 1 GiB", c.MaxBlockSize)
	}
	if c.MaxInFlight < 1 || c.MaxInFlight > maxMaxInFlight {
		bad("MaxInFlight %d is not in [1, %d]", c.MaxInFlight, maxMaxInFlight)
	}
	if c.MaxInFlightBytes < int64(c.MaxBlockSize) {
		bad("MaxInFlightBytes %d is less than MaxBlockSize %d", c.MaxInFlightBytes, c.MaxBlockSize)
	}
	if c.HandshakeTimeout < 0 {
		bad("HandshakeTimeout %v is negative", c.HandshakeTimeout)
	}
	if c.ShutdownTimeout < 0 {
		bad("ShutdownTimeout %v is negative", c.ShutdownTimeout)
	}
	if err := checkString([]byte(c.DefaultExport)); err != nil {
		bad("DefaultExport: %v", err)
	}
	return errors.Join(errs...)
}

func powerOfTwo(v uint32) bool { return v != 0 && bits.OnesCount32(v) == 1 }
