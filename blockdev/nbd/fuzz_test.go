package nbd_test

import (
	"bytes"
	"context"
	"net"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/tsumiki-storage/tsumiki/blockdev/nbd"
	"github.com/tsumiki-storage/tsumiki/blockdev/nbd/nbdtest"
)

// scriptConn is a net.Conn whose client side is a fixed byte string: reads
// return it and then EOF; writes are kept for inspection.
type scriptConn struct {
	r   *bytes.Reader
	out bytes.Buffer
}

func (c *scriptConn) Read(p []byte) (int, error)         { return c.r.Read(p) }
func (c *scriptConn) Write(p []byte) (int, error)        { return c.out.Write(p) }
func (c *scriptConn) Close() error                       { return nil }
func (c *scriptConn) LocalAddr() net.Addr                { return &net.TCPAddr{} }
func (c *scriptConn) RemoteAddr() net.Addr               { return &net.TCPAddr{} }
func (c *scriptConn) SetDeadline(t time.Time) error      { return nil }
func (c *scriptConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *scriptConn) SetWriteDeadline(t time.Time) error { return nil }

// serveScript runs ServeConn over a scripted client and returns what the
// server wrote. It fails if ServeConn hangs or leaves the export open.
func serveScript(t *testing.T, client []byte) []byte {
	o := nbdtest.NewOpener()
	img := o.Add("img", nbdtest.NewImage(1<<20))
	img.Fill([]byte("some data"), 4096)
	o.Add("ro", nbdtest.NewImage(64<<10)).SetReadOnly(true)
	srv, err := nbd.NewServer(nbd.Config{Opener: o, Logger: zap.NewNop(), MaxInFlight: 8, MaxInFlightBytes: 32 << 20})
	if err != nil {
		t.Fatal(err)
	}
	c := &scriptConn{r: bytes.NewReader(client)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.ServeConn(context.Background(), c)
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("ServeConn did not return on input % x", client[:min(len(client), 200)])
	}
	if n := o.OpenExports(); n != 0 {
		t.Fatalf("%d exports left open", n)
	}
	return c.out.Bytes()
}

// Client-side encoders for seeds.
func opt(id uint32, data []byte) []byte {
	b := wbe.AppendUint64(nil, wOptMagic)
	b = wbe.AppendUint32(b, id)
	b = wbe.AppendUint32(b, uint32(len(data)))
	return append(b, data...)
}

func req(flags, typ uint16, handle, off uint64, n uint32, payload []byte) []byte {
	b := wbe.AppendUint32(nil, wRequestMagic)
	b = wbe.AppendUint16(b, flags)
	b = wbe.AppendUint16(b, typ)
	b = wbe.AppendUint64(b, handle)
	b = wbe.AppendUint64(b, off)
	b = wbe.AppendUint32(b, n)
	return append(b, payload...)
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// FuzzHandshake feeds arbitrary client bytes from the very start of a
// connection: the server must not panic or hang, and must close the export
// it opened.
func FuzzHandshake(f *testing.F) {
	flags := wbe.AppendUint32(nil, wFixedNewstyle|wNoZeroes)
	f.Add(cat(flags, opt(wOptList, nil), opt(wOptAbort, nil)))
	f.Add(cat(flags, opt(wOptStructured, nil), opt(wOptSetMeta, metaData("img", "base:allocation")),
		opt(wOptInfo, infoData("img", 0, 1, 2, 3)), opt(wOptGo, infoData("img", 3)), req(0, wCmdRead, 1, 0, 512, nil)))
	f.Add(cat(flags, opt(wOptListMeta, metaData("img")), opt(77, []byte("x")), opt(wOptExportName, []byte("img"))))
	f.Add(cat(wbe.AppendUint32(nil, 0), opt(wOptExportName, []byte("ro")), req(0, wCmdWrite, 1, 0, 4, []byte("abcd"))))
	f.Add(cat(flags, opt(wOptGo, infoData("nope")), opt(wOptGo, []byte{0xff, 0xff})))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, client []byte) {
		serveScript(t, client)
	})
}

// sessionPrefix is a valid negotiation: structured replies (when asked),
// base:allocation and NBD_OPT_GO with block sizes.
func sessionPrefix(structured bool) []byte {
	b := wbe.AppendUint32(nil, wFixedNewstyle|wNoZeroes)
	if structured {
		b = cat(b, opt(wOptStructured, nil), opt(wOptSetMeta, metaData("img", "base:allocation")))
	}
	return cat(b, opt(wOptGo, infoData("img", wInfoBlock)))
}

// FuzzSession feeds arbitrary bytes after a valid handshake (the first
// byte picks simple or structured replies). The server must not panic or
// hang; with structured replies its output must parse as a sequence of
// well-formed replies (simple replies carry no data there).
func FuzzSession(f *testing.F) {
	f.Add(byte(1), cat(req(0, wCmdRead, 1, 0, 4096, nil), req(wCmdFlagFUA, wCmdWrite, 2, 512, 512, make([]byte, 512)),
		req(0, wCmdFlush, 3, 0, 0, nil), req(0, wCmdTrim, 4, 0, 4096, nil), req(wCmdFlagNoHole, wCmdZeroes, 5, 8192, 4096, nil),
		req(wCmdFlagReqOne, wCmdBlock, 6, 0, 1<<20, nil), req(0, wCmdDisc, 7, 0, 0, nil)))
	f.Add(byte(0), cat(req(0, wCmdRead, 1, 0, 4096, nil), req(0, wCmdWrite, 2, 0, 3, []byte("abc"))))
	f.Add(byte(1), cat(req(0, wCmdWrite, 1, 0, 40<<20, nil), req(0, wCmdRead, 2, 1<<20, 512, nil)))
	f.Add(byte(1), cat(req(0xffff, 0xffff, 1, 1<<63, 0xffffffff, nil)))
	f.Add(byte(1), cat(req(wCmdFlagDF, wCmdRead, 1, 0, 32<<20, nil), req(0, wCmdBlock, 2, 0, 0, nil)))
	f.Add(byte(0), []byte("\x25\x60\x95\x13garbage"))
	f.Fuzz(func(t *testing.T, mode byte, rest []byte) {
		structured := mode&1 != 0
		out := serveScript(t, cat(sessionPrefix(structured), rest))
		if !structured {
			return
		}
		out = skipNegotiation(t, out)
		for len(out) > 0 {
			if len(out) < 4 {
				t.Fatalf("trailing bytes % x", out)
			}
			switch wbe.Uint32(out) {
			case wSimpleMagic:
				if len(out) < 16 {
					t.Fatalf("short simple reply % x", out)
				}
				out = out[16:]
			case wStructuredMagic:
				if len(out) < 20 {
					t.Fatalf("short chunk header % x", out)
				}
				n := int(wbe.Uint32(out[16:]))
				if wbe.Uint16(out[4:])&wChunkDone == 0 || len(out) < 20+n {
					t.Fatalf("bad chunk % x", out[:20])
				}
				checkChunk(t, wbe.Uint16(out[6:]), out[20:20+n])
				out = out[20+n:]
			default:
				t.Fatalf("bad reply magic % x", out[:4])
			}
		}
	})
}

// skipNegotiation drops the greeting and the option replies up to the ACK
// of NBD_OPT_GO.
func skipNegotiation(t *testing.T, out []byte) []byte {
	out = out[18:]
	for {
		if len(out) < 20 || wbe.Uint64(out) != wOptReplyMagic {
			t.Fatalf("bad option reply % x", out[:min(len(out), 20)])
		}
		o, typ, n := wbe.Uint32(out[8:]), wbe.Uint32(out[12:]), int(wbe.Uint32(out[16:]))
		out = out[20+n:]
		if o == wOptGo {
			if typ&(1<<31) != 0 {
				t.Fatalf("NBD_OPT_GO failed: %#x", typ)
			}
			if typ == wRepAck {
				return out
			}
		}
	}
}

// checkChunk checks the payload of one structured chunk.
func checkChunk(t *testing.T, typ uint16, p []byte) {
	switch typ {
	case wChunkData:
		if len(p) < 9 {
			t.Fatalf("data chunk of %d bytes", len(p))
		}
	case wChunkBlock:
		if len(p) < 12 || (len(p)-4)%8 != 0 {
			t.Fatalf("block status chunk of %d bytes", len(p))
		}
		for d := p[4:]; len(d) > 0; d = d[8:] {
			if wbe.Uint32(d) == 0 {
				t.Fatalf("zero-length descriptor")
			}
		}
	case wChunkError:
		if len(p) < 6 || wbe.Uint32(p) == 0 || int(wbe.Uint16(p[4:])) != len(p)-6 {
			t.Fatalf("error chunk % x", p)
		}
	default:
		t.Fatalf("chunk type %d", typ)
	}
}
