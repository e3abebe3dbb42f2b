package nbd

import (
	"context"
	"errors"
	"io/fs"
	"strings"
	"syscall"
	"unicode/utf8"
)

// Sentinel errors. Classify with errors.Is. Errors an Export or Opener
// returns are turned into wire codes by nbdErrno and optionReplyType, the
// only two places that do so.
var (
	// ErrExportNotFound: no export has the requested name. An Opener returns
	// an error matching it (or fs.ErrNotExist) for an unknown name; the
	// client gets NBD_REP_ERR_UNKNOWN.
	ErrExportNotFound = errors.New("nbd: export not found")
	// ErrRefused: the Opener will not open the export for this client (for
	// example the image is locked by another host); the client gets
	// NBD_REP_ERR_POLICY with the error's text.
	ErrRefused = errors.New("nbd: export refused")
	// ErrReadOnly: a write, trim or zero request on a read-only export
	// (EPERM on the wire).
	ErrReadOnly = errors.New("nbd: export is read-only")
	// ErrNoSpace: the backend is full, or a write reaches past the end of
	// the export (ENOSPC on the wire). Exports report a full backend with an
	// error matching ErrNoSpace or syscall.ENOSPC.
	ErrNoSpace = errors.New("nbd: no space left on export")
	// ErrShutdown: the server is shutting down (ESHUTDOWN on the wire).
	ErrShutdown = errors.New("nbd: server shutting down")
	// ErrConfig: the Config is invalid.
	ErrConfig = errors.New("nbd: invalid config")
	// ErrProtocol: the client broke the protocol in a way that leaves no
	// choice but to close its connection (bad magic, unknown client flags,
	// an unknown export with NBD_OPT_EXPORT_NAME, truncated messages).
	ErrProtocol = errors.New("nbd: protocol violation")
)

// Invalid requests. Each is answered with EINVAL (or ENOSPC for a write
// past the end, which matches both ErrOutOfRange and ErrNoSpace) and the
// connection goes on.
var (
	// ErrUnknownCommand: a command type the server does not implement
	// (including NBD_CMD_CACHE).
	ErrUnknownCommand = errors.New("nbd: unknown command")
	// ErrBadFlags: a command flag that is unknown, not valid for the
	// command, or not advertised (NBD_CMD_FLAG_FAST_ZERO, DF without
	// structured replies).
	ErrBadFlags = errors.New("nbd: command flags not valid for this command")
	// ErrOutOfRange: the request reaches past the end of the export.
	ErrOutOfRange = errors.New("nbd: request beyond the end of the export")
	// ErrMisaligned: offset or length is not a multiple of the minimum
	// block size the client agreed to.
	ErrMisaligned = errors.New("nbd: request not aligned to the minimum block size")
	// ErrTooLarge: a READ or WRITE longer than the maximum block size.
	ErrTooLarge = errors.New("nbd: request larger than the maximum block size")
	// ErrZeroLength: a data command with length 0.
	ErrZeroLength = errors.New("nbd: zero-length request")
	// ErrBadFlush: a FLUSH whose offset or length is not 0.
	ErrBadFlush = errors.New("nbd: flush with nonzero offset or length")
	// ErrNoMetaContext: BLOCK_STATUS on a connection that selected no
	// metadata context.
	ErrNoMetaContext = errors.New("nbd: block status without a negotiated metadata context")
	// ErrBadOption: the data of an option is malformed (NBD_REP_ERR_INVALID).
	ErrBadOption = errors.New("nbd: malformed option")
	// ErrBadExtents: the Export returned an allocation map that does not
	// describe the requested range (EIO).
	ErrBadExtents = errors.New("nbd: export returned invalid extents")
)

// invalidRequest reports whether err is one of the request validation
// errors, whose text is safe and useful to send to the client.
func invalidRequest(err error) bool {
	for _, s := range []error{ErrUnknownCommand, ErrBadFlags, ErrOutOfRange, ErrMisaligned,
		ErrTooLarge, ErrZeroLength, ErrBadFlush, ErrNoMetaContext, ErrReadOnly} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// nbdErrno is the one place that turns an error from request validation or
// from the Export into the error value of a transmission reply.
func nbdErrno(err error) uint32 {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, ErrNoSpace), errors.Is(err, syscall.ENOSPC),
		errors.Is(err, syscall.EDQUOT), errors.Is(err, syscall.EFBIG):
		return errnoNoSpace
	case errors.Is(err, ErrReadOnly), errors.Is(err, syscall.EROFS), errors.Is(err, syscall.EPERM):
		return errnoPerm
	case invalidRequest(err):
		return errnoInval
	case errors.Is(err, ErrShutdown), errors.Is(err, context.Canceled):
		return errnoShutdown
	default:
		return errnoIO
	}
}

// errorMessage is the human-readable text sent with a structured error
// reply: the validation error itself, or a fixed text for backend errors so
// that internal details (hosts, paths) stay in the server's log.
func errorMessage(err error) string {
	if invalidRequest(err) {
		return wireString(err.Error(), maxStringLen)
	}
	switch nbdErrno(err) {
	case errnoNoSpace:
		return ErrNoSpace.Error()
	case errnoPerm:
		return "nbd: operation not permitted by the export"
	case errnoShutdown:
		return ErrShutdown.Error()
	default:
		return "nbd: input/output error in the export"
	}
}

// optionReplyType is the one place that turns an Opener's error into the
// error type of an option reply.
func optionReplyType(err error) uint32 {
	switch {
	case errors.Is(err, ErrExportNotFound), errors.Is(err, fs.ErrNotExist):
		return repErrUnknown
	case errors.Is(err, ErrShutdown), errors.Is(err, context.Canceled):
		return repErrShutdown
	case errors.Is(err, ErrRefused), errors.Is(err, ErrReadOnly), errors.Is(err, fs.ErrPermission):
		return repErrPolicy
	case errors.Is(err, ErrBadOption):
		return repErrInvalid
	default:
		// The protocol has no generic failure code; NBD_REP_ERR_UNKNOWN
		// ("export unknown") with the error text is what clients show best.
		return repErrUnknown
	}
}

// wireString makes s fit the protocol's rules for strings: valid UTF-8, no
// NUL, at most n bytes (cut at a character boundary).
func wireString(s string, n int) string {
	s = strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", ""), "?")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
