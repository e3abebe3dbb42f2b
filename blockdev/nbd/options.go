package nbd

import (
	"fmt"

	"go.uber.org/zap"
)

// option answers one option. It returns a session when the client enters
// transmission.
func (n *negotiation) option(opt uint32, data []byte) (*session, error) {
	switch opt {
	case optExportName:
		return n.optExportName(data)
	case optAbort:
		// The spec asks for an ACK; the client may already be gone.
		_ = n.reply(opt, repAck, nil)
		_ = n.bw.Flush()
		return nil, errAborted
	case optList:
		return nil, n.optList(data)
	case optInfo, optGo:
		return n.optInfoGo(opt, data)
	case optStructuredReply:
		return nil, n.optStructuredReply(data)
	case optListMetaContext, optSetMetaContext:
		return nil, n.optMetaContext(opt, data)
	default:
		// Includes NBD_OPT_STARTTLS (no TLS yet) and NBD_OPT_EXTENDED_HEADERS.
		return nil, n.replyError(opt, repErrUnsup, fmt.Sprintf("nbd: option %d is not supported", opt))
	}
}

// optExportName enters transmission the old way: no error can be
// returned, so an unknown export closes the connection.
func (n *negotiation) optExportName(data []byte) (*session, error) {
	if err := checkString(data); err != nil {
		return nil, fmt.Errorf("%w: export name: %w", ErrProtocol, err)
	}
	name, exp, ro, err := n.open(string(data))
	if err != nil {
		return nil, fmt.Errorf("%w: NBD_OPT_EXPORT_NAME %q: %w", ErrProtocol, data, err)
	}
	sess := n.session(name, exp, ro, false)
	n.out = be.AppendUint64(n.out[:0], uint64(sess.size))
	n.out = be.AppendUint16(n.out, sess.flags)
	if !n.noZeroes {
		n.out = append(n.out, make([]byte, exportNameZeroes)...)
	}
	if _, err := n.bw.Write(n.out); err != nil {
		exp.Close()
		return nil, err
	}
	return sess, nil
}

// optList answers NBD_OPT_LIST with one NBD_REP_SERVER per export.
func (n *negotiation) optList(data []byte) error {
	if len(data) != 0 {
		return n.replyError(optList, repErrInvalid, "nbd: NBD_OPT_LIST takes no data")
	}
	names, err := n.s.cfg.Opener.List(n.ctx)
	if err != nil {
		n.log.Warn("listing exports", zap.Error(err))
		return n.replyError(optList, optionReplyType(err), err.Error())
	}
	for _, name := range names {
		if checkString([]byte(name)) != nil {
			continue // cannot be named on the wire
		}
		if err := n.reply(optList, repServer, appendServer(nil, name)); err != nil {
			return err
		}
	}
	return n.reply(optList, repAck, nil)
}

// optInfoGo answers NBD_OPT_INFO and NBD_OPT_GO. GO opens the export and
// returns the session; INFO only describes it (Opener.Info), so that asking
// about an export neither takes nor breaks its lock.
func (n *negotiation) optInfoGo(opt uint32, data []byte) (*session, error) {
	req, err := parseInfoRequest(data)
	if err != nil {
		return nil, n.replyError(opt, repErrInvalid, err.Error())
	}
	if opt == optInfo {
		name, info, err := n.info(req.name)
		if err != nil {
			return nil, n.replyError(opt, optionReplyType(err), err.Error())
		}
		ro := n.s.cfg.ReadOnly || info.ReadOnly
		return nil, n.replyInfo(opt, req, name, info.Size, transmissionFlags(ro, n.structured), info.Description)
	}
	name, exp, ro, err := n.open(req.name)
	if err != nil {
		return nil, n.replyError(opt, optionReplyType(err), err.Error())
	}
	sess := n.session(name, exp, ro, req.has(infoBlockSize))
	desc := ""
	if d, ok := exp.(Describer); ok && req.has(infoDescription) {
		desc = d.Description()
	}
	if err := n.replyInfo(opt, req, name, sess.size, sess.flags, desc); err != nil {
		if cerr := exp.Close(); cerr != nil {
			n.log.Warn("closing export after a failed NBD_OPT_GO", zap.String("export", name), zap.Error(cerr))
		}
		return nil, err
	}
	return sess, nil
}

// replyInfo sends the NBD_REP_INFO replies an NBD_OPT_INFO or NBD_OPT_GO
// asked for, and the final ACK.
func (n *negotiation) replyInfo(opt uint32, req infoRequest, name string, size int64, flags uint16, desc string) error {
	minB, prefB, maxB := n.s.blockSizes(size)
	err := n.reply(opt, repInfo, appendInfoExport(nil, uint64(size), flags))
	if err == nil {
		// Sent even when not asked for: clients ignore what they do not
		// want, and a client that did not ask is not held to it.
		err = n.reply(opt, repInfo, appendInfoBlockSize(nil, minB, prefB, maxB))
	}
	if err == nil && req.has(infoName) {
		err = n.reply(opt, repInfo, appendInfoString(nil, infoName, name))
	}
	if err == nil && req.has(infoDescription) {
		if d := wireString(desc, maxStringLen); d != "" {
			err = n.reply(opt, repInfo, appendInfoString(nil, infoDescription, d))
		}
	}
	if err == nil {
		err = n.reply(opt, repAck, nil)
	}
	return err
}

// optStructuredReply switches on structured replies.
func (n *negotiation) optStructuredReply(data []byte) error {
	if len(data) != 0 {
		return n.replyError(optStructuredReply, repErrInvalid, "nbd: NBD_OPT_STRUCTURED_REPLY takes no data")
	}
	n.structured = true
	return n.reply(optStructuredReply, repAck, nil)
}

// optMetaContext answers NBD_OPT_LIST_META_CONTEXT and
// NBD_OPT_SET_META_CONTEXT. The only context is base:allocation, the same
// for every export, so the export name is not looked up here; NBD_OPT_GO
// fails later if it is unknown.
func (n *negotiation) optMetaContext(opt uint32, data []byte) error {
	req, err := parseMetaContextRequest(data)
	if err != nil {
		return n.replyError(opt, repErrInvalid, err.Error())
	}
	if !n.structured {
		return n.replyError(opt, repErrInvalid, "nbd: metadata contexts need structured replies first")
	}
	match := false
	for _, q := range req.queries {
		if q == metaBaseAllocation || (opt == optListMetaContext && q == metaBaseNamespace) {
			match = true
		}
	}
	if opt == optListMetaContext {
		if match || len(req.queries) == 0 {
			if err := n.reply(opt, repMetaContext, appendMetaContext(nil, 0, metaBaseAllocation)); err != nil {
				return err
			}
		}
		return n.reply(opt, repAck, nil)
	}
	n.metaAlloc, n.metaName = match, n.s.resolve(req.name)
	if match {
		if err := n.reply(opt, repMetaContext, appendMetaContext(nil, metaAllocationID, metaBaseAllocation)); err != nil {
			return err
		}
	}
	return n.reply(opt, repAck, nil)
}

// open resolves and opens an export for the client. It returns the
// resolved name and whether the export is read-only.
func (n *negotiation) open(requested string) (string, Export, bool, error) {
	name := n.s.resolve(requested)
	if name == "" {
		return "", nil, false, fmt.Errorf("%w: no default export", ErrExportNotFound)
	}
	ro := n.s.cfg.ReadOnly
	exp, err := n.s.cfg.Opener.Open(n.ctx, name, ro)
	if err != nil {
		return name, nil, false, fmt.Errorf("nbd: opening export %q: %w", name, err)
	}
	if r, ok := exp.(ReadOnlyReporter); ok && r.ReadOnly() {
		ro = true
	}
	if exp.Size() < 0 {
		exp.Close()
		return name, nil, false, fmt.Errorf("nbd: export %q has negative size %d", name, exp.Size())
	}
	return name, exp, ro, nil
}

// info resolves and describes an export for NBD_OPT_INFO. It returns the
// resolved name.
func (n *negotiation) info(requested string) (string, ExportInfo, error) {
	name := n.s.resolve(requested)
	if name == "" {
		return "", ExportInfo{}, fmt.Errorf("%w: no default export", ErrExportNotFound)
	}
	info, err := n.s.cfg.Opener.Info(n.ctx, name)
	if err != nil {
		return name, ExportInfo{}, fmt.Errorf("nbd: describing export %q: %w", name, err)
	}
	if info.Size < 0 {
		return name, ExportInfo{}, fmt.Errorf("nbd: export %q has negative size %d", name, info.Size)
	}
	return name, info, nil
}

// session describes the transmission phase with exp. agreed tells whether
// the client asked for the block size constraints (then alignment is
// enforced).
func (n *negotiation) session(name string, exp Export, ro, agreed bool) *session {
	size := exp.Size()
	minB, _, _ := n.s.blockSizes(size)
	align := uint32(1)
	if agreed {
		align = minB
	}
	return &session{
		name:       name,
		export:     exp,
		size:       size,
		flags:      transmissionFlags(ro, n.structured),
		readOnly:   ro,
		structured: n.structured,
		metaAlloc:  n.structured && n.metaAlloc && n.metaName == name,
		align:      align,
		maxPayload: n.s.cfg.MaxBlockSize,
	}
}

// transmissionFlags are the flags advertised for an export.
func transmissionFlags(readOnly, structured bool) uint16 {
	f := tflagHasFlags | tflagSendFlush | tflagSendFUA | tflagCanMultiConn
	if readOnly {
		f |= tflagReadOnly
	} else {
		f |= tflagSendTrim | tflagSendWriteZeroes
	}
	if structured {
		f |= tflagSendDF // reads are always answered with one data chunk
	}
	return f
}
