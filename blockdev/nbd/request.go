package nbd

import (
	"fmt"

	"github.com/pojntfx/go-nbd/pkg/protocol"
)

// request is one transmission request header.
type request = protocol.TransmissionRequestHeader

// parseRequest decodes a 28-byte request header. A bad magic is a
// protocol violation: the stream cannot be resynchronised.
func parseRequest(b []byte) (request, error) {
	if len(b) < requestHeaderLen {
		return request{}, fmt.Errorf("%w: request header of %d bytes", ErrProtocol, len(b))
	}
	r := request{
		RequestMagic: be.Uint32(b[0:4]),
		CommandFlags: be.Uint16(b[4:6]),
		Type:         be.Uint16(b[6:8]),
		Handle:       be.Uint64(b[8:16]),
		Offset:       be.Uint64(b[16:24]),
		Length:       be.Uint32(b[24:28]),
	}
	if r.RequestMagic != magicRequest {
		return r, fmt.Errorf("%w: request magic %#x", ErrProtocol, r.RequestMagic)
	}
	return r, nil
}

// allowedFlags are the command flags each command accepts in a session.
// FUA is valid on every command (the spec says so; it is ignored where
// nothing is written).
func (s *session) allowedFlags(cmd uint16) uint16 {
	f := cmdFlagFUA
	switch cmd {
	case cmdRead:
		if s.structured {
			f |= cmdFlagDF
		}
	case cmdWriteZeroes:
		f |= cmdFlagNoHole
	case cmdBlockStatus:
		f |= cmdFlagReqOne
	}
	return f
}

// check validates a request against the session and returns nil or an
// error for nbdErrno. It does not look at the payload.
func (s *session) check(r request) error {
	switch r.Type {
	case cmdRead, cmdWrite, cmdFlush, cmdTrim, cmdWriteZeroes, cmdBlockStatus:
	default:
		return fmt.Errorf("%w: type %d", ErrUnknownCommand, r.Type)
	}
	if bad := r.CommandFlags &^ s.allowedFlags(r.Type); bad != 0 {
		return fmt.Errorf("%w: flags %#x on command %d", ErrBadFlags, bad, r.Type)
	}
	writes := r.Type == cmdWrite || r.Type == cmdTrim || r.Type == cmdWriteZeroes
	if writes && s.readOnly {
		return ErrReadOnly
	}
	if r.Type == cmdFlush {
		if r.Offset != 0 || r.Length != 0 {
			return fmt.Errorf("%w: offset %d length %d", ErrBadFlush, r.Offset, r.Length)
		}
		return nil
	}
	if r.Type == cmdBlockStatus && !s.metaAlloc {
		return ErrNoMetaContext
	}
	if r.Length == 0 {
		return ErrZeroLength
	}
	if (r.Type == cmdRead || r.Type == cmdWrite) && r.Length > s.maxPayload {
		return fmt.Errorf("%w: length %d (max %d)", ErrTooLarge, r.Length, s.maxPayload)
	}
	if r.Offset%uint64(s.align) != 0 || r.Length%s.align != 0 {
		return fmt.Errorf("%w: offset %d length %d (block size %d)", ErrMisaligned, r.Offset, r.Length, s.align)
	}
	size := uint64(s.size)
	if r.Offset > size || uint64(r.Length) > size-r.Offset {
		if r.Type == cmdWrite || r.Type == cmdWriteZeroes {
			// The spec asks for ENOSPC on writes past the end.
			return fmt.Errorf("%w: %w: offset %d length %d size %d", ErrOutOfRange, ErrNoSpace, r.Offset, r.Length, size)
		}
		return fmt.Errorf("%w: offset %d length %d size %d", ErrOutOfRange, r.Offset, r.Length, size)
	}
	return nil
}
