package nbd_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tsumiki-storage/tsumiki/blockdev/nbd"
	"github.com/tsumiki-storage/tsumiki/blockdev/nbd/nbdtest"
)

func handshakeServer(t *testing.T, cfg func(*nbd.Config)) *testServer {
	o := nbdtest.NewOpener()
	o.Add("pool/a", nbdtest.NewImage(1<<20)).SetDescription("image a")
	o.Add("pool/b", nbdtest.NewImage(3<<20+100)) // size not a multiple of 512
	o.Refuse("pool/locked", fmt.Errorf("locked by host-7: %w", nbd.ErrRefused))
	return startServer(t, o, cfg)
}

// TestOptions sends each option (after a fixed-newstyle greeting) and
// checks the reply types, then that negotiation goes on.
func TestOptions(t *testing.T) {
	s := handshakeServer(t, nil)
	big := make([]byte, 70<<10)
	tests := []struct {
		name       string
		structured bool // send NBD_OPT_STRUCTURED_REPLY first
		opt        uint32
		data       []byte
		want       []uint32 // reply types
		check      func(t *testing.T, rs []optReply)
	}{
		{name: "unknown option", opt: 99, want: []uint32{wRepErrUnsup}},
		{name: "starttls", opt: wOptStartTLS, want: []uint32{wRepErrUnsup}},
		{name: "unknown option with data", opt: 1234, data: []byte("junk"), want: []uint32{wRepErrUnsup}},
		{name: "option too long", opt: wOptInfo, data: big, want: []uint32{wRepErrTooBig}},
		{name: "list with data", opt: wOptList, data: []byte{0}, want: []uint32{wRepErrInval}},
		{name: "list", opt: wOptList, want: []uint32{wRepServer, wRepServer, wRepAck},
			check: func(t *testing.T, rs []optReply) {
				for i, name := range []string{"pool/a", "pool/b"} {
					d := rs[i].data
					if n := wbe.Uint32(d); string(d[4:4+n]) != name {
						t.Errorf("server %d = %q, want %q", i, d[4:4+n], name)
					}
				}
			}},
		{name: "info unknown export", opt: wOptInfo, data: infoData("pool/nope"), want: []uint32{wRepErrUnkn}},
		{name: "go unknown export", opt: wOptGo, data: infoData("pool/nope"), want: []uint32{wRepErrUnkn}},
		{name: "go default export unset", opt: wOptGo, data: infoData(""), want: []uint32{wRepErrUnkn}},
		{name: "go refused export", opt: wOptGo, data: infoData("pool/locked"), want: []uint32{wRepErrPolicy},
			check: func(t *testing.T, rs []optReply) {
				if !bytes.Contains(rs[0].data, []byte("locked by host-7")) {
					t.Errorf("refusal message %q", rs[0].data)
				}
			}},
		{name: "info truncated", opt: wOptInfo, data: infoData("pool/a")[:5], want: []uint32{wRepErrInval}},
		{name: "info trailing bytes", opt: wOptInfo, data: append(infoData("pool/a"), 0), want: []uint32{wRepErrInval}},
		{name: "info name with NUL", opt: wOptInfo, data: infoData("pool/a\x00"), want: []uint32{wRepErrInval}},
		{name: "info", opt: wOptInfo, data: infoData("pool/a", wInfoName, wInfoDesc, wInfoBlock, 77),
			want: []uint32{wRepInfo, wRepInfo, wRepInfo, wRepInfo, wRepAck},
			check: func(t *testing.T, rs []optReply) {
				e := rs[0].data
				if wbe.Uint16(e) != wInfoExport || wbe.Uint64(e[2:]) != 1<<20 || wbe.Uint16(e[10:]) != wFlagsReadWrite {
					t.Errorf("NBD_INFO_EXPORT % x", e)
				}
				b := rs[1].data
				if wbe.Uint16(b) != wInfoBlock || wbe.Uint32(b[2:]) != 512 || wbe.Uint32(b[6:]) != 4096 || wbe.Uint32(b[10:]) != 32<<20 {
					t.Errorf("NBD_INFO_BLOCK_SIZE % x", b)
				}
				if n := rs[2].data; wbe.Uint16(n) != wInfoName || string(n[2:]) != "pool/a" {
					t.Errorf("NBD_INFO_NAME %q", n)
				}
				if d := rs[3].data; wbe.Uint16(d) != wInfoDesc || string(d[2:]) != "image a" {
					t.Errorf("NBD_INFO_DESCRIPTION %q", d)
				}
			}},
		{name: "info odd size", opt: wOptInfo, data: infoData("pool/b"), want: []uint32{wRepInfo, wRepInfo, wRepAck},
			check: func(t *testing.T, rs []optReply) {
				if b := rs[1].data; wbe.Uint32(b[2:]) != 1 {
					t.Errorf("minimum block size %d for a size that is not a multiple of 512, want 1", wbe.Uint32(b[2:]))
				}
			}},
		{name: "structured reply with data", opt: wOptStructured, data: []byte{1}, want: []uint32{wRepErrInval}},
		{name: "set meta without structured", opt: wOptSetMeta, data: metaData("pool/a", "base:allocation"), want: []uint32{wRepErrInval}},
		{name: "list meta all", structured: true, opt: wOptListMeta, data: metaData("pool/a"), want: []uint32{wRepMeta, wRepAck},
			check: func(t *testing.T, rs []optReply) {
				if string(rs[0].data[4:]) != "base:allocation" {
					t.Errorf("context %q", rs[0].data[4:])
				}
			}},
		{name: "list meta namespace", structured: true, opt: wOptListMeta, data: metaData("pool/a", "base:"), want: []uint32{wRepMeta, wRepAck}},
		{name: "list meta other", structured: true, opt: wOptListMeta, data: metaData("pool/a", "qemu:dirty-bitmap:x"), want: []uint32{wRepAck}},
		{name: "set meta", structured: true, opt: wOptSetMeta, data: metaData("pool/a", "x:y", "base:allocation", "base:allocation"),
			want: []uint32{wRepMeta, wRepAck},
			check: func(t *testing.T, rs []optReply) {
				if wbe.Uint32(rs[0].data) == 0 || string(rs[0].data[4:]) != "base:allocation" {
					t.Errorf("set context % x", rs[0].data)
				}
			}},
		{name: "set meta malformed", structured: true, opt: wOptSetMeta, data: metaData("pool/a", "base:allocation")[:12], want: []uint32{wRepErrInval}},
		{name: "set meta too many queries", structured: true, opt: wOptSetMeta,
			data: wbe.AppendUint32(metaData("pool/a")[:10], 1<<30), want: []uint32{wRepErrInval}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, s.addr)
			c.greet(wFixedNewstyle)
			if tc.structured {
				c.option(wOptStructured, nil)
				c.optReplies()
			}
			c.option(tc.opt, tc.data)
			rs := c.optReplies()
			var got []uint32
			for _, r := range rs {
				got = append(got, r.typ)
				if r.opt != tc.opt {
					t.Errorf("reply for option %d, want %d", r.opt, tc.opt)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("reply types %#x, want %#x", got, tc.want)
			}
			if tc.check != nil {
				tc.check(t, rs)
			}
			// Negotiation goes on: a LIST still works.
			c.option(wOptList, nil)
			if rs := c.optReplies(); rs[len(rs)-1].typ != wRepAck {
				t.Errorf("LIST after %s: %+v", tc.name, rs)
			}
		})
	}
}

// TestInfoDoesNotOpen: NBD_OPT_INFO describes an export through
// Opener.Info and never opens it, so asking about an image that is locked
// elsewhere (Open refused) answers, and takes or breaks no lock.
func TestInfoDoesNotOpen(t *testing.T) {
	o := nbdtest.NewOpener()
	o.Add("pool/held", nbdtest.NewImage(1<<20)).SetDescription("held elsewhere")
	o.Refuse("pool/held", fmt.Errorf("locked by host-7: %w", nbd.ErrRefused))
	o.Add("pool/snap", nbdtest.NewImage(1<<20)).SetReadOnly(true)
	s := startServer(t, o, nil)
	c := dialRaw(t, s.addr)
	c.greet(wFixedNewstyle)
	for _, tc := range []struct {
		name  string
		flags uint16
	}{
		{"pool/held", wFlagsReadWrite},
		{"pool/snap", wFlagHasFlags | wFlagReadOnly | wFlagFlush | wFlagFUA | wFlagMultiConn},
	} {
		c.option(wOptInfo, infoData(tc.name, wInfoDesc))
		rs := c.optReplies()
		if len(rs) == 0 || rs[0].typ != wRepInfo {
			t.Fatalf("NBD_OPT_INFO %s: replies %+v, want NBD_REP_INFO", tc.name, rs)
		}
		if e := rs[0].data; wbe.Uint16(e) != wInfoExport || wbe.Uint64(e[2:]) != 1<<20 || wbe.Uint16(e[10:]) != tc.flags {
			t.Errorf("NBD_OPT_INFO %s: NBD_INFO_EXPORT % x, want size %d flags %#x", tc.name, e, 1<<20, tc.flags)
		}
	}
	if o.Opens() != 0 || o.Infos() != 2 {
		t.Fatalf("NBD_OPT_INFO opened %d export(s) and described %d; want 0 and 2", o.Opens(), o.Infos())
	}
}

// TestHandshakeClose covers what ends a negotiation.
func TestHandshakeClose(t *testing.T) {
	s := handshakeServer(t, nil)
	t.Run("unknown client flags", func(t *testing.T) {
		c := dialRaw(t, s.addr)
		c.greet(wFixedNewstyle | 1<<5)
		c.expectClosed()
	})
	t.Run("bad option magic", func(t *testing.T) {
		c := dialRaw(t, s.addr)
		c.greet(wFixedNewstyle)
		c.send(bytes.Repeat([]byte{0x42}, 16))
		c.expectClosed()
	})
	t.Run("abort", func(t *testing.T) {
		c := dialRaw(t, s.addr)
		c.greet(wFixedNewstyle)
		c.option(wOptAbort, nil)
		if r := c.optReply(); r.typ != wRepAck {
			t.Errorf("abort reply %+v", r)
		}
		c.expectClosed()
	})
	t.Run("export name unknown", func(t *testing.T) {
		c := dialRaw(t, s.addr)
		c.greet(wFixedNewstyle)
		c.option(wOptExportName, []byte("pool/nope"))
		c.expectClosed()
	})
	t.Run("non-fixed client sends list", func(t *testing.T) {
		c := dialRaw(t, s.addr)
		c.greet(0)
		c.option(wOptList, nil)
		c.expectClosed()
	})
	t.Run("truncated option", func(t *testing.T) {
		c := dialRaw(t, s.addr)
		c.greet(wFixedNewstyle)
		c.send(wbe.AppendUint32(wbe.AppendUint32(wbe.AppendUint64(nil, wOptMagic), wOptGo), 100), []byte("short"))
		c.nc.(interface{ CloseWrite() error }).CloseWrite()
		c.expectClosed()
	})
}

// TestExportName covers NBD_OPT_EXPORT_NAME, with and without the 124
// zero bytes, and a client without fixed newstyle.
func TestExportName(t *testing.T) {
	s := handshakeServer(t, nil)
	for _, tc := range []struct {
		name        string
		clientFlags uint32
		zeroes      int
	}{
		{"fixed, no zeroes", wFixedNewstyle | wNoZeroes, 0},
		{"fixed, zeroes", wFixedNewstyle, 124},
		{"plain newstyle", 0, 124},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, s.addr)
			c.greet(tc.clientFlags)
			c.option(wOptExportName, []byte("pool/a"))
			b := c.read(10 + tc.zeroes)
			if wbe.Uint64(b) != 1<<20 || wbe.Uint16(b[8:]) != wFlagsReadWrite || !bytes.Equal(b[10:], make([]byte, tc.zeroes)) {
				t.Fatalf("export name reply % x", b)
			}
			r := c.do(0, wCmdRead, 0, 4096, nil)
			if r.structured || r.errno != 0 || len(r.data()) != 4096 {
				t.Fatalf("read: %+v", r)
			}
		})
	}
}

func TestDefaultExport(t *testing.T) {
	s := handshakeServer(t, func(c *nbd.Config) { c.DefaultExport = "pool/a" })
	c, size, _ := connect(t, s.addr, "", sessionOpts{})
	if size != 1<<20 {
		t.Fatalf("default export size %d", size)
	}
	if r := c.do(0, wCmdRead, 0, 512, nil); r.errno != 0 {
		t.Fatalf("read: %+v", r)
	}
}

func TestHandshakeTimeout(t *testing.T) {
	s := handshakeServer(t, func(c *nbd.Config) { c.HandshakeTimeout = 100 * time.Millisecond })
	c := dialRaw(t, s.addr)
	c.greet(wFixedNewstyle)
	start := time.Now()
	c.expectClosed()
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("closed after %v", d)
	}
}

// blockingOpener's Open waits for its context to end.
type blockingOpener struct{ *nbdtest.Opener }

func (blockingOpener) Open(ctx context.Context, _ string, _ bool) (nbd.Export, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestHandshakeTimeoutEndsOpen: an Opener call that hangs (a lock to wait
// out, an unreachable control plane) ends with the handshake's time, not
// holding its goroutine, and whatever it holds, until the server stops.
func TestHandshakeTimeoutEndsOpen(t *testing.T) {
	o := nbdtest.NewOpener()
	o.Add("img", nbdtest.NewImage(imgSize))
	s := startServer(t, o, func(c *nbd.Config) {
		c.Opener = blockingOpener{o}
		c.HandshakeTimeout = 200 * time.Millisecond
	})
	c := dialRaw(t, s.addr)
	c.greet(wFixedNewstyle)
	start := time.Now()
	c.option(wOptGo, infoData("img"))
	c.expectClosed()
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("an Open that waits for its context returned %v after NBD_OPT_GO; the handshake timeout is 200ms", d)
	}
}

// TestMetaContextForOtherExport: contexts set for one name do not carry
// over to another export.
func TestMetaContextForOtherExport(t *testing.T) {
	s := handshakeServer(t, nil)
	c := dialRaw(t, s.addr)
	c.greet(wFixedNewstyle)
	c.option(wOptStructured, nil)
	c.optReplies()
	c.option(wOptSetMeta, metaData("pool/b", "base:allocation"))
	c.optReplies()
	c.option(wOptGo, infoData("pool/a"))
	c.optReplies()
	if r := c.do(0, wCmdBlock, 0, 4096, nil); r.errno != wEINVAL {
		t.Fatalf("block status with contexts of another export: %+v", r)
	}
}
