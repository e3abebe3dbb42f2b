package nbd

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"

	"github.com/pojntfx/go-nbd/pkg/protocol"
)

// Decoders and encoders of the option-haggling messages. Decoders take the
// bytes the client sent and never trust a length inside them.

var be = binary.BigEndian

// maxOptionLen bounds the data of one option the server reads into memory.
// The largest legitimate option is a meta-context request with many
// queries; 64 KiB holds sixteen maximal strings. Longer options are read
// and discarded and answered NBD_REP_ERR_TOO_BIG.
const maxOptionLen = 64 << 10

// parseOptionHeader decodes the 16-byte header of a client option.
func parseOptionHeader(b []byte) (protocol.NegotiationOptionHeader, error) {
	if len(b) < optionHeaderLen {
		return protocol.NegotiationOptionHeader{}, fmt.Errorf("%w: option header of %d bytes", ErrProtocol, len(b))
	}
	h := protocol.NegotiationOptionHeader{
		OptionMagic: be.Uint64(b[0:8]),
		ID:          be.Uint32(b[8:12]),
		Length:      be.Uint32(b[12:16]),
	}
	if h.OptionMagic != magicOption {
		return h, fmt.Errorf("%w: option magic %#x", ErrProtocol, h.OptionMagic)
	}
	return h, nil
}

// infoRequest is the data of NBD_OPT_INFO and NBD_OPT_GO.
type infoRequest struct {
	name  string
	infos []uint16 // information types the client asks for
}

// has reports whether the client asked for information type t.
func (r infoRequest) has(t uint16) bool {
	for _, i := range r.infos {
		if i == t {
			return true
		}
	}
	return false
}

// parseInfoRequest decodes: 32-bit name length, name, 16-bit count, count
// 16-bit information types; nothing may follow.
func parseInfoRequest(data []byte) (infoRequest, error) {
	var r infoRequest
	d := decoder{b: data}
	name, err := d.string32()
	if err != nil {
		return r, err
	}
	n, err := d.uint16()
	if err != nil {
		return r, err
	}
	if d.left() != 2*int(n) {
		return r, fmt.Errorf("%w: %d information requests in %d bytes", ErrBadOption, n, d.left())
	}
	r.name = name
	r.infos = make([]uint16, n)
	for i := range r.infos {
		r.infos[i], _ = d.uint16()
	}
	return r, nil
}

// metaContextRequest is the data of NBD_OPT_LIST_META_CONTEXT and
// NBD_OPT_SET_META_CONTEXT.
type metaContextRequest struct {
	name    string
	queries []string
}

// parseMetaContextRequest decodes: 32-bit name length, name, 32-bit query
// count, then count times a 32-bit length and a query; nothing may follow.
func parseMetaContextRequest(data []byte) (metaContextRequest, error) {
	var r metaContextRequest
	d := decoder{b: data}
	name, err := d.string32()
	if err != nil {
		return r, err
	}
	n, err := d.uint32()
	if err != nil {
		return r, err
	}
	if uint64(n)*4 > uint64(d.left()) { // each query takes at least its length
		return r, fmt.Errorf("%w: %d queries in %d bytes", ErrBadOption, n, d.left())
	}
	r.name = name
	r.queries = make([]string, 0, n)
	for range n {
		q, err := d.string32()
		if err != nil {
			return r, err
		}
		r.queries = append(r.queries, q)
	}
	if d.left() != 0 {
		return r, fmt.Errorf("%w: %d trailing bytes", ErrBadOption, d.left())
	}
	return r, nil
}

// decoder reads big-endian fields from option data.
type decoder struct {
	b []byte
}

func (d *decoder) left() int { return len(d.b) }

func (d *decoder) uint16() (uint16, error) {
	if len(d.b) < 2 {
		return 0, fmt.Errorf("%w: truncated", ErrBadOption)
	}
	v := be.Uint16(d.b)
	d.b = d.b[2:]
	return v, nil
}

func (d *decoder) uint32() (uint32, error) {
	if len(d.b) < 4 {
		return 0, fmt.Errorf("%w: truncated", ErrBadOption)
	}
	v := be.Uint32(d.b)
	d.b = d.b[4:]
	return v, nil
}

// string32 reads a 32-bit length and that many bytes of a protocol string.
func (d *decoder) string32() (string, error) {
	n, err := d.uint32()
	if err != nil {
		return "", err
	}
	if uint64(n) > uint64(len(d.b)) {
		return "", fmt.Errorf("%w: string of %d bytes in %d", ErrBadOption, n, len(d.b))
	}
	s := d.b[:n]
	d.b = d.b[n:]
	if err := checkString(s); err != nil {
		return "", err
	}
	return string(s), nil
}

// checkString enforces the protocol's rules for strings: at most 4096
// bytes of UTF-8 without NUL.
func checkString(s []byte) error {
	if len(s) > maxStringLen {
		return fmt.Errorf("%w: string of %d bytes (max %d)", ErrBadOption, len(s), maxStringLen)
	}
	if !utf8.Valid(s) {
		return fmt.Errorf("%w: string is not UTF-8", ErrBadOption)
	}
	for _, c := range s {
		if c == 0 {
			return fmt.Errorf("%w: string contains NUL", ErrBadOption)
		}
	}
	return nil
}

// appendOptionReply appends an option reply header for a payload of n
// bytes.
func appendOptionReply(dst []byte, opt, typ uint32, n int) []byte {
	dst = be.AppendUint64(dst, magicOptionReply)
	dst = be.AppendUint32(dst, opt)
	dst = be.AppendUint32(dst, typ)
	return be.AppendUint32(dst, uint32(n))
}

// appendInfoExport appends the payload of NBD_INFO_EXPORT.
func appendInfoExport(dst []byte, size uint64, flags uint16) []byte {
	dst = be.AppendUint16(dst, infoExport)
	dst = be.AppendUint64(dst, size)
	return be.AppendUint16(dst, flags)
}

// appendInfoBlockSize appends the payload of NBD_INFO_BLOCK_SIZE.
func appendInfoBlockSize(dst []byte, minimum, preferred, maximum uint32) []byte {
	dst = be.AppendUint16(dst, infoBlockSize)
	dst = be.AppendUint32(dst, minimum)
	dst = be.AppendUint32(dst, preferred)
	return be.AppendUint32(dst, maximum)
}

// appendInfoString appends the payload of NBD_INFO_NAME or
// NBD_INFO_DESCRIPTION.
func appendInfoString(dst []byte, typ uint16, s string) []byte {
	dst = be.AppendUint16(dst, typ)
	return append(dst, s...)
}

// appendServer appends the payload of NBD_REP_SERVER.
func appendServer(dst []byte, name string) []byte {
	dst = be.AppendUint32(dst, uint32(len(name)))
	return append(dst, name...)
}

// appendMetaContext appends the payload of NBD_REP_META_CONTEXT.
func appendMetaContext(dst []byte, id uint32, name string) []byte {
	dst = be.AppendUint32(dst, id)
	return append(dst, name...)
}
