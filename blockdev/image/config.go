package image

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Defaults of Config.
const (
	DefaultPrefix      = "/tsumiki"
	DefaultLockTTL     = 10 * time.Second
	DefaultMaxInFlight = 32
)

// Config configures a Store.
type Config struct {
	// Etcd is the control plane (headers, directory, locks). Required; the
	// Store does not close it.
	Etcd *clientv3.Client
	// Prefix is the cluster's etcd key prefix; default DefaultPrefix.
	Prefix string
	// Objects does the data IO. Required; *client.Client satisfies it.
	Objects ObjectIO
	// Holder describes this process in the locks it takes. Host and PID
	// default to this host's name and this process's id.
	Holder Holder
	// LockTTL is the lease TTL of the locks this Store takes, rounded up
	// to whole seconds (etcd may raise it to its minimum): a holder that
	// dies keeps its image locked at most this long, and breaking a lock
	// waits this long. Default DefaultLockTTL.
	LockTTL time.Duration
	// MaxInFlight bounds the object operations one Image, or one Store
	// operation (remove, resize), has in flight. Default DefaultMaxInFlight.
	MaxInFlight int
	// Logger; default no-op.
	Logger *zap.Logger
	// Now is the clock for lock deadlines and creation times; default
	// time.Now. (Timers and the etcd client use the real clock.)
	Now func() time.Time
}

// withDefaults returns a copy of c with zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	c.Prefix = strings.TrimRight(c.Prefix, "/")
	if c.LockTTL == 0 {
		c.LockTTL = DefaultLockTTL
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Holder.Host == "" {
		c.Holder.Host, _ = os.Hostname()
	}
	if c.Holder.PID == 0 {
		c.Holder.PID = os.Getpid()
		c.Holder.Boot = ThisBoot()
	}
	return c
}

// Validate returns nil if c (defaults applied or not) is usable, or one
// error per broken rule, joined; each wraps ErrInvalid.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: config: "+format, append([]any{ErrInvalid}, args...)...))
	}
	if c.Etcd == nil {
		bad("Etcd is required (the control plane client)")
	}
	if c.Objects == nil {
		bad("Objects is required (e.g. a *client.Client)")
	}
	if c.LockTTL < 0 || (c.LockTTL > 0 && c.LockTTL < time.Second) {
		bad("LockTTL %v: use at least 1s (0 means %v)", c.LockTTL, DefaultLockTTL)
	}
	if c.MaxInFlight < 0 {
		bad("MaxInFlight %d is negative (0 means %d)", c.MaxInFlight, DefaultMaxInFlight)
	}
	return errors.Join(errs...)
}
