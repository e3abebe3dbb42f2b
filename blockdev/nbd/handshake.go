package nbd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"

	"go.uber.org/zap"
)

// errAborted ends a negotiation the client aborted with NBD_OPT_ABORT.
var errAborted = errors.New("nbd: client aborted the negotiation")

// negotiation is the state of one connection's option haggling. It belongs
// to the connection's goroutine.
type negotiation struct {
	s   *Server
	ctx context.Context
	br  *bufio.Reader
	bw  *bufio.Writer
	log *zap.Logger

	fixed      bool   // client set NBD_FLAG_C_FIXED_NEWSTYLE
	noZeroes   bool   // client set NBD_FLAG_C_NO_ZEROES
	structured bool   // NBD_OPT_STRUCTURED_REPLY acknowledged
	metaAlloc  bool   // base:allocation selected by NBD_OPT_SET_META_CONTEXT...
	metaName   string // ...for this (resolved) export name

	out []byte // scratch for encoding replies
}

// session is what a successful negotiation hands to the transmission phase.
type session struct {
	name       string
	export     Export
	size       int64
	flags      uint16 // transmission flags sent to the client
	readOnly   bool
	structured bool
	metaAlloc  bool   // base:allocation is active: BLOCK_STATUS allowed
	align      uint32 // offsets and lengths must be multiples of align
	maxPayload uint32 // largest READ or WRITE
}

// negotiate runs the fixed-newstyle handshake and option haggling until the
// client enters transmission (it returns the session) or the negotiation
// ends (errAborted, ErrProtocol, a network error).
func (s *Server) negotiate(ctx context.Context, br *bufio.Reader, bw *bufio.Writer, log *zap.Logger) (*session, error) {
	var greeting [18]byte
	be.PutUint64(greeting[0:], magicNBD)
	be.PutUint64(greeting[8:], magicOption)
	be.PutUint16(greeting[16:], flagFixedNewstyle|flagNoZeroes)
	if _, err := bw.Write(greeting[:]); err != nil {
		return nil, err
	}
	if err := bw.Flush(); err != nil {
		return nil, err
	}
	var cf [4]byte
	if _, err := io.ReadFull(br, cf[:]); err != nil {
		return nil, fmt.Errorf("nbd: reading client flags: %w", err)
	}
	fixed, noZeroes, err := parseClientFlags(cf[:])
	if err != nil {
		return nil, err
	}
	n := &negotiation{s: s, ctx: ctx, br: br, bw: bw, log: log, fixed: fixed, noZeroes: noZeroes}
	for {
		sess, err := n.next()
		if err != nil || sess != nil {
			return sess, err
		}
	}
}

// parseClientFlags decodes the client's 32-bit flags. Unknown flags are a
// protocol violation: the spec says the server must drop the connection.
// A client without NBD_FLAG_C_FIXED_NEWSTYLE is served as plain newstyle:
// it may only send NBD_OPT_EXPORT_NAME.
func parseClientFlags(b []byte) (fixed, noZeroes bool, err error) {
	if len(b) != 4 {
		return false, false, fmt.Errorf("%w: client flags of %d bytes", ErrProtocol, len(b))
	}
	f := be.Uint32(b)
	if f&^clientFlagsKnown != 0 {
		return false, false, fmt.Errorf("%w: unknown client flags %#x", ErrProtocol, f)
	}
	return f&clientFlagFixedNewstyle != 0, f&clientFlagNoZeroes != 0, nil
}

// next reads and answers one option.
func (n *negotiation) next() (*session, error) {
	var hb [optionHeaderLen]byte
	if _, err := io.ReadFull(n.br, hb[:]); err != nil {
		return nil, fmt.Errorf("nbd: reading option: %w", err)
	}
	h, err := parseOptionHeader(hb[:])
	if err != nil {
		return nil, err
	}
	if !n.fixed && h.ID != optExportName {
		return nil, fmt.Errorf("%w: option %d from a client without fixed newstyle", ErrProtocol, h.ID)
	}
	if h.Length > maxOptionLen {
		if _, err := io.CopyN(io.Discard, n.br, int64(h.Length)); err != nil {
			return nil, fmt.Errorf("nbd: discarding option %d: %w", h.ID, err)
		}
		if h.ID == optExportName {
			return nil, fmt.Errorf("%w: export name of %d bytes", ErrProtocol, h.Length)
		}
		if err := n.replyError(h.ID, repErrTooBig, fmt.Sprintf("nbd: option data of %d bytes is too long", h.Length)); err != nil {
			return nil, err
		}
		return nil, n.bw.Flush()
	}
	data := make([]byte, h.Length)
	if _, err := io.ReadFull(n.br, data); err != nil {
		return nil, fmt.Errorf("nbd: reading option %d data: %w", h.ID, err)
	}
	sess, err := n.option(h.ID, data)
	if ferr := n.bw.Flush(); err == nil && ferr != nil {
		if sess != nil {
			sess.export.Close()
		}
		return nil, ferr
	}
	return sess, err
}

// reply sends one option reply.
func (n *negotiation) reply(opt, typ uint32, payload []byte) error {
	n.out = appendOptionReply(n.out[:0], opt, typ, len(payload))
	n.out = append(n.out, payload...)
	_, err := n.bw.Write(n.out)
	return err
}

// replyError sends an error reply with a message for humans.
func (n *negotiation) replyError(opt, typ uint32, msg string) error {
	n.log.Debug("option refused", zap.Uint32("option", opt), zap.Uint32("reply", typ), zap.String("msg", msg))
	return n.reply(opt, typ, []byte(wireString(msg, maxStringLen)))
}
