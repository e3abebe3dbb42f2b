package nbd

import "github.com/pojntfx/go-nbd/pkg/protocol"

// Wire constants of the NBD protocol (NetworkBlockDevice/nbd doc/proto.md).
// Where go-nbd's protocol package defines a value it is taken from there; the
// values it lacks are defined here under the specification's names.

// Magic numbers.
const (
	magicNBD             = protocol.NEGOTIATION_MAGIC_OLDSTYLE // "NBDMAGIC", first word of every handshake
	magicOption          = protocol.NEGOTIATION_MAGIC_OPTION   // "IHAVEOPT"
	magicOptionReply     = protocol.NEGOTIATION_MAGIC_REPLY
	magicRequest         = protocol.TRANSMISSION_MAGIC_REQUEST
	magicSimpleReply     = protocol.TRANSMISSION_MAGIC_REPLY
	magicStructuredReply = uint32(0x668e33ef)
)

// Handshake flags (server) and client flags.
const (
	flagFixedNewstyle = protocol.NEGOTIATION_HANDSHAKE_FLAG_FIXED_NEWSTYLE
	flagNoZeroes      = uint16(1 << 1)

	clientFlagFixedNewstyle = uint32(1 << 0)
	clientFlagNoZeroes      = uint32(1 << 1)
	clientFlagsKnown        = clientFlagFixedNewstyle | clientFlagNoZeroes
)

// Options (NBD_OPT_*).
const (
	optExportName      = uint32(1)
	optAbort           = protocol.NEGOTIATION_ID_OPTION_ABORT
	optList            = protocol.NEGOTIATION_ID_OPTION_LIST
	optInfo            = protocol.NEGOTIATION_ID_OPTION_INFO
	optGo              = protocol.NEGOTIATION_ID_OPTION_GO
	optStructuredReply = uint32(8)
	optListMetaContext = uint32(9)
	optSetMetaContext  = uint32(10)
)

// Option reply types (NBD_REP_*).
const (
	repAck         = protocol.NEGOTIATION_TYPE_REPLY_ACK
	repServer      = protocol.NEGOTIATION_TYPE_REPLY_SERVER
	repInfo        = protocol.NEGOTIATION_TYPE_REPLY_INFO
	repMetaContext = uint32(4)

	repErrUnsup    = protocol.NEGOTIATION_TYPE_REPLY_ERR_UNSUPPORTED
	repErrPolicy   = uint32(1<<31 | 2)
	repErrInvalid  = uint32(1<<31 | 3)
	repErrUnknown  = protocol.NEGOTIATION_TYPE_REPLY_ERR_UNKNOWN
	repErrShutdown = uint32(1<<31 | 7)
	repErrTooBig   = uint32(1<<31 | 9)
)

// Information types of NBD_REP_INFO (NBD_INFO_*).
const (
	infoExport      = protocol.NEGOTIATION_TYPE_INFO_EXPORT
	infoName        = protocol.NEGOTIATION_TYPE_INFO_NAME
	infoDescription = protocol.NEGOTIATION_TYPE_INFO_DESCRIPTION
	infoBlockSize   = protocol.NEGOTIATION_TYPE_INFO_BLOCKSIZE
)

// Transmission flags (NBD_FLAG_*).
const (
	tflagHasFlags        = protocol.NEGOTIATION_REPLY_FLAGS_HAS_FLAGS
	tflagReadOnly        = uint16(1 << 1)
	tflagSendFlush       = uint16(1 << 2)
	tflagSendFUA         = uint16(1 << 3)
	tflagSendTrim        = uint16(1 << 5)
	tflagSendWriteZeroes = uint16(1 << 6)
	tflagSendDF          = uint16(1 << 7)
	tflagCanMultiConn    = protocol.NEGOTIATION_REPLY_FLAGS_CAN_MULTI_CONN
)

// Commands (NBD_CMD_*). NBD_CMD_CACHE (5) is not supported and answered
// like any unknown command.
const (
	cmdRead        = protocol.TRANSMISSION_TYPE_REQUEST_READ
	cmdWrite       = protocol.TRANSMISSION_TYPE_REQUEST_WRITE
	cmdDisc        = protocol.TRANSMISSION_TYPE_REQUEST_DISC
	cmdFlush       = uint16(3)
	cmdTrim        = uint16(4)
	cmdWriteZeroes = uint16(6)
	cmdBlockStatus = uint16(7)
)

// Command flags (NBD_CMD_FLAG_*). NBD_CMD_FLAG_FAST_ZERO is not advertised
// and therefore rejected.
const (
	cmdFlagFUA    = uint16(1 << 0)
	cmdFlagNoHole = uint16(1 << 1)
	cmdFlagDF     = uint16(1 << 2)
	cmdFlagReqOne = uint16(1 << 3)
)

// Structured replies.
const (
	replyFlagDone        = uint16(1 << 0)
	replyTypeOffsetData  = uint16(1)
	replyTypeBlockStatus = uint16(5)
	replyTypeError       = uint16(1<<15 | 1)
)

// Error values of replies. Only these may go on the wire.
const (
	errnoPerm     = protocol.TRANSMISSION_ERROR_EPERM
	errnoIO       = uint32(5)
	errnoInval    = protocol.TRANSMISSION_ERROR_EINVAL
	errnoNoSpace  = uint32(28)
	errnoShutdown = uint32(108)
)

// Metadata contexts. base:allocation is the only one; it has a fixed ID.
const (
	metaBaseAllocation = "base:allocation"
	metaBaseNamespace  = "base:"
	metaAllocationID   = uint32(1)

	stateHole = uint32(1 << 0)
	stateZero = uint32(1 << 1)
)

// Sizes.
const (
	optionHeaderLen      = 16  // magic, option, length
	optionReplyHeaderLen = 20  // magic, option, type, length
	requestHeaderLen     = 28  // magic, flags, type, handle, offset, length
	simpleReplyLen       = 16  // magic, error, handle
	chunkHeaderLen       = 20  // magic, flags, type, handle, length
	exportNameZeroes     = 124 // padding after NBD_OPT_EXPORT_NAME's reply

	maxStringLen = 4096 // longest string (export name, query, message) the spec allows
)
