package nbd_test

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// Wire values, spelled out independently of the package under test.
const (
	wNBDMagic        = 0x4e42444d41474943
	wOptMagic        = 0x49484156454F5054
	wOptReplyMagic   = 0x3e889045565a9
	wRequestMagic    = 0x25609513
	wSimpleMagic     = 0x67446698
	wStructuredMagic = 0x668e33ef

	wFixedNewstyle = 1
	wNoZeroes      = 2

	wOptExportName = 1
	wOptAbort      = 2
	wOptList       = 3
	wOptStartTLS   = 5
	wOptInfo       = 6
	wOptGo         = 7
	wOptStructured = 8
	wOptListMeta   = 9
	wOptSetMeta    = 10

	wRepAck       = 1
	wRepServer    = 2
	wRepInfo      = 3
	wRepMeta      = 4
	wRepErrUnsup  = 1<<31 | 1
	wRepErrPolicy = 1<<31 | 2
	wRepErrInval  = 1<<31 | 3
	wRepErrUnkn   = 1<<31 | 6
	wRepErrTooBig = 1<<31 | 9

	wInfoExport = 0
	wInfoName   = 1
	wInfoDesc   = 2
	wInfoBlock  = 3

	wFlagHasFlags   = 1 << 0
	wFlagReadOnly   = 1 << 1
	wFlagFlush      = 1 << 2
	wFlagFUA        = 1 << 3
	wFlagTrim       = 1 << 5
	wFlagZeroes     = 1 << 6
	wFlagDF         = 1 << 7
	wFlagMultiConn  = 1 << 8
	wFlagsReadWrite = wFlagHasFlags | wFlagFlush | wFlagFUA | wFlagTrim | wFlagZeroes | wFlagMultiConn

	wCmdRead   = 0
	wCmdWrite  = 1
	wCmdDisc   = 2
	wCmdFlush  = 3
	wCmdTrim   = 4
	wCmdCache  = 5
	wCmdZeroes = 6
	wCmdBlock  = 7

	wCmdFlagFUA    = 1 << 0
	wCmdFlagNoHole = 1 << 1
	wCmdFlagDF     = 1 << 2
	wCmdFlagReqOne = 1 << 3

	wChunkDone   = 1
	wChunkData   = 1
	wChunkBlock  = 5
	wChunkError  = 1<<15 | 1
	wEPERM       = 1
	wEIO         = 5
	wEINVAL      = 22
	wENOSPC      = 28
	wESHUTDOWN   = 108
	wStateHole   = 1
	wStateZero   = 2
	wBaseAllocID = 1
)

var wbe = binary.BigEndian

// rawClient speaks NBD byte by byte, to test what libnbd would never send.
type rawClient struct {
	t  testing.TB
	nc net.Conn
	br *bufio.Reader
}

func dialRaw(t testing.TB, addr string) *rawClient {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
	return &rawClient{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (c *rawClient) send(parts ...[]byte) {
	c.t.Helper()
	for _, p := range parts {
		if _, err := c.nc.Write(p); err != nil {
			c.t.Fatalf("send: %v", err)
		}
	}
}

func (c *rawClient) read(n int) []byte {
	c.t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(c.br, b); err != nil {
		c.t.Fatalf("read %d bytes: %v", n, err)
	}
	return b
}

// expectClosed checks the server closed the connection.
func (c *rawClient) expectClosed() {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c.br)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.t.Fatalf("connection still open (read %d bytes)", len(b))
	}
}

// greet reads the greeting and sends client flags.
func (c *rawClient) greet(clientFlags uint32) {
	c.t.Helper()
	g := c.read(18)
	if wbe.Uint64(g) != wNBDMagic || wbe.Uint64(g[8:]) != wOptMagic || wbe.Uint16(g[16:]) != wFixedNewstyle|wNoZeroes {
		c.t.Fatalf("greeting % x", g)
	}
	c.send(wbe.AppendUint32(nil, clientFlags))
}

func (c *rawClient) option(opt uint32, data []byte) {
	c.t.Helper()
	b := wbe.AppendUint64(nil, wOptMagic)
	b = wbe.AppendUint32(b, opt)
	b = wbe.AppendUint32(b, uint32(len(data)))
	c.send(append(b, data...))
}

type optReply struct {
	opt, typ uint32
	data     []byte
}

func (c *rawClient) optReply() optReply {
	c.t.Helper()
	h := c.read(20)
	if wbe.Uint64(h) != wOptReplyMagic {
		c.t.Fatalf("option reply magic % x", h)
	}
	return optReply{wbe.Uint32(h[8:]), wbe.Uint32(h[12:]), c.read(int(wbe.Uint32(h[16:])))}
}

// optReplies reads replies until a final one (ACK or error).
func (c *rawClient) optReplies() []optReply {
	c.t.Helper()
	var rs []optReply
	for {
		r := c.optReply()
		rs = append(rs, r)
		if r.typ == wRepAck || r.typ&(1<<31) != 0 {
			return rs
		}
	}
}

func infoData(name string, infos ...uint16) []byte {
	b := wbe.AppendUint32(nil, uint32(len(name)))
	b = append(b, name...)
	b = wbe.AppendUint16(b, uint16(len(infos)))
	for _, i := range infos {
		b = wbe.AppendUint16(b, i)
	}
	return b
}

func metaData(name string, queries ...string) []byte {
	b := wbe.AppendUint32(nil, uint32(len(name)))
	b = append(b, name...)
	b = wbe.AppendUint32(b, uint32(len(queries)))
	for _, q := range queries {
		b = wbe.AppendUint32(b, uint32(len(q)))
		b = append(b, q...)
	}
	return b
}

// session options for connect.
type sessionOpts struct {
	structured bool
	meta       bool
	blockSizes bool // ask for NBD_INFO_BLOCK_SIZE: alignment enforced
}

// connect runs a full fixed-newstyle negotiation and NBD_OPT_GO; it
// returns the export size and transmission flags.
func connect(t testing.TB, addr, name string, o sessionOpts) (*rawClient, uint64, uint16) {
	t.Helper()
	c := dialRaw(t, addr)
	c.greet(wFixedNewstyle | wNoZeroes)
	if o.structured {
		c.option(wOptStructured, nil)
		if r := c.optReplies(); r[0].typ != wRepAck {
			t.Fatalf("structured reply: %+v", r)
		}
	}
	if o.meta {
		c.option(wOptSetMeta, metaData(name, "base:allocation"))
		if r := c.optReplies(); len(r) != 2 || r[0].typ != wRepMeta {
			t.Fatalf("set meta context: %+v", r)
		}
	}
	var infos []uint16
	if o.blockSizes {
		infos = append(infos, wInfoBlock)
	}
	c.option(wOptGo, infoData(name, infos...))
	var size uint64
	var flags uint16
	for _, r := range c.optReplies() {
		switch {
		case r.typ == wRepInfo && wbe.Uint16(r.data) == wInfoExport:
			size, flags = wbe.Uint64(r.data[2:]), wbe.Uint16(r.data[10:])
		case r.typ&(1<<31) != 0:
			t.Fatalf("NBD_OPT_GO %q: error %#x %s", name, r.typ, r.data)
		}
	}
	return c, size, flags
}

func (c *rawClient) request(flags, typ uint16, handle, off uint64, length uint32, payload []byte) {
	c.t.Helper()
	b := wbe.AppendUint32(nil, wRequestMagic)
	b = wbe.AppendUint16(b, flags)
	b = wbe.AppendUint16(b, typ)
	b = wbe.AppendUint64(b, handle)
	b = wbe.AppendUint64(b, off)
	b = wbe.AppendUint32(b, length)
	c.send(append(b, payload...))
}

// reply is a decoded simple reply or one structured chunk.
type reply struct {
	structured bool
	errno      uint32
	handle     uint64
	flags, typ uint16
	payload    []byte // chunk payload
}

// readReply reads one simple reply (data of readLen bytes follows a
// successful one when readLen > 0) or one structured chunk.
func (c *rawClient) readReply(readLen int) reply {
	c.t.Helper()
	m := wbe.Uint32(c.read(4))
	switch m {
	case wSimpleMagic:
		h := c.read(12)
		r := reply{errno: wbe.Uint32(h), handle: wbe.Uint64(h[4:])}
		if r.errno == 0 && readLen > 0 {
			r.payload = c.read(readLen)
		}
		return r
	case wStructuredMagic:
		h := c.read(16)
		r := reply{structured: true, flags: wbe.Uint16(h), typ: wbe.Uint16(h[2:]), handle: wbe.Uint64(h[4:])}
		r.payload = c.read(int(wbe.Uint32(h[12:])))
		if r.typ == wChunkError {
			r.errno = wbe.Uint32(r.payload)
		}
		return r
	}
	c.t.Fatalf("reply magic %#x", m)
	return reply{}
}

// msg is the message of a structured error chunk.
func (r reply) msg() string {
	if r.typ != wChunkError || len(r.payload) < 6 {
		return ""
	}
	return string(r.payload[6 : 6+int(wbe.Uint16(r.payload[4:]))])
}

// data returns the bytes of a read reply (simple or OFFSET_DATA chunk).
func (r reply) data() []byte {
	if r.structured && r.typ == wChunkData {
		return r.payload[8:]
	}
	return r.payload
}

// do sends one request and returns its (single, final) reply.
func (c *rawClient) do(flags, typ uint16, off uint64, length uint32, payload []byte) reply {
	c.t.Helper()
	c.request(flags, typ, 0xfeed, off, length, payload)
	readLen := 0
	if typ == wCmdRead {
		readLen = int(length)
	}
	r := c.readReply(readLen)
	if r.handle != 0xfeed {
		c.t.Fatalf("reply handle %#x, want 0xfeed", r.handle)
	}
	if r.structured && r.flags&wChunkDone == 0 {
		c.t.Fatalf("single chunk without NBD_REPLY_FLAG_DONE: %+v", r)
	}
	return r
}

func bufioReader(nc net.Conn) *bufio.Reader { return bufio.NewReader(nc) }
