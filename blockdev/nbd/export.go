package nbd

import "context"

// Export is one image as the server sees it. The server calls its methods
// from many goroutines at once (requests of one connection run
// concurrently), so an Export must be safe for concurrent use. Offsets and
// lengths passed in are already checked: non-negative, inside [0, Size()).
type Export interface {
	// Size is the export's size in bytes. The server reads it once per
	// connection; resizing is not announced to connected clients.
	Size() int64
	// ReadAt fills all of p from offset off, or fails. Never short.
	ReadAt(ctx context.Context, p []byte, off int64) error
	// WriteAt writes all of p at off, or fails. The server replies to the
	// client once WriteAt returns; unless Config.FlushOnFUA is set, the
	// server assumes the data is durable by then (FUA is not forwarded).
	WriteAt(ctx context.Context, p []byte, off int64) error
	// Flush is a barrier: when it returns nil, every write, trim and zero
	// that returned before Flush was called is durable. For CAN_MULTI_CONN
	// to hold, this must cover writes made through any Export the Opener
	// returned for the same name.
	Flush(ctx context.Context) error
	// Trim frees [off, off+length); the range reads as zeros afterwards.
	Trim(ctx context.Context, off, length int64) error
	// Zero makes [off, off+length) read as zeros. With mayTrim the export
	// may free the space (as Trim); without, the space stays allocated
	// (NBD_CMD_FLAG_NO_HOLE).
	Zero(ctx context.Context, off, length int64, mayTrim bool) error
	// Extents describes the allocation of [off, off+length): consecutive
	// extents starting at off, covering at least one byte and at most the
	// range (more is clipped). Boundaries inside the range should be
	// multiples of 512 bytes; the server shortens the answer at the first
	// one that is not aligned to the negotiated minimum block size.
	Extents(ctx context.Context, off, length int64) ([]Extent, error)
	// Close releases the export; the server calls it once, after the last
	// request of the connection has finished.
	Close() error
}

// Opener resolves export names ("POOL/NAME", "POOL/NAME@SNAP") to exports.
// It must be safe for concurrent use.
//
// Exports opened under the same name must share their data: a write
// acknowledged through one is seen by reads through the others and made
// durable by Flush on any of them. The server advertises
// NBD_FLAG_CAN_MULTI_CONN on that promise.
type Opener interface {
	// Open opens the named export. readOnly asks for read-only access;
	// the Export may be read-only even when it is false (see
	// ReadOnlyReporter). An unknown name returns an error matching
	// ErrExportNotFound; a refusal (image locked elsewhere) one matching
	// ErrRefused. For a network client, ctx ends when the handshake's time
	// (Config.HandshakeTimeout) is up.
	Open(ctx context.Context, name string, readOnly bool) (Export, error)
	// Info describes the named export without opening it, to answer
	// NBD_OPT_INFO (`nbdinfo --list` asks it of every export): it must not
	// take, wait for or break a lock, nor change anything that a client of
	// the export could notice. Errors as Open's.
	Info(ctx context.Context, name string) (ExportInfo, error)
	// List returns the names of the exports a client may see
	// (NBD_OPT_LIST).
	List(ctx context.Context) ([]string, error)
}

// ExportInfo describes an export, as Opener.Info returns it.
type ExportInfo struct {
	// Size is the export's size in bytes, as Export.Size.
	Size int64
	// ReadOnly is true for an export that is read-only even when opened
	// for writing (a snapshot), as ReadOnlyReporter.
	ReadOnly bool
	// Description is sent as NBD_INFO_DESCRIPTION when a client asks for
	// it, as Describer's; "" for none.
	Description string
}

// ReadOnlyReporter is implemented by an Export that can be read-only even
// when opened for writing (a snapshot). When ReadOnly returns true the
// server advertises NBD_FLAG_READ_ONLY and refuses writes with EPERM.
type ReadOnlyReporter interface {
	ReadOnly() bool
}

// Describer is implemented by an Export that has a description for humans,
// sent as NBD_INFO_DESCRIPTION when a client asks for it.
type Describer interface {
	Description() string
}

// Extent is one run of the allocation map returned by Export.Extents.
type Extent struct {
	Offset int64
	Length int64
	Flags  ExtentFlags
}

// ExtentFlags describe an Extent; their values are the base:allocation
// context's NBD_STATE_* bits.
type ExtentFlags uint32

const (
	// ExtentHole: the range is not allocated (NBD_STATE_HOLE).
	ExtentHole ExtentFlags = ExtentFlags(stateHole)
	// ExtentZero: the range reads as zeros (NBD_STATE_ZERO).
	ExtentZero ExtentFlags = ExtentFlags(stateZero)
)
