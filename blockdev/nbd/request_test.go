package nbd

import (
	"errors"
	"testing"
)

func reqBytes(flags, typ uint16, handle, off uint64, length uint32) []byte {
	b := be.AppendUint32(nil, magicRequest)
	b = be.AppendUint16(b, flags)
	b = be.AppendUint16(b, typ)
	b = be.AppendUint64(b, handle)
	b = be.AppendUint64(b, off)
	return be.AppendUint32(b, length)
}

func testSession() *session {
	return &session{size: 1 << 20, structured: true, metaAlloc: true, align: 512, maxPayload: 32 << 20}
}

func TestSessionCheck(t *testing.T) {
	ro := testSession()
	ro.readOnly = true
	simple := testSession()
	simple.structured, simple.metaAlloc = false, false
	tests := []struct {
		name  string
		s     *session
		flags uint16
		typ   uint16
		off   uint64
		n     uint32
		errno uint32
	}{
		{"read", testSession(), 0, cmdRead, 0, 4096, 0},
		{"read to end", testSession(), 0, cmdRead, 1<<20 - 512, 512, 0},
		{"read FUA", testSession(), cmdFlagFUA, cmdRead, 0, 512, 0},
		{"read DF", testSession(), cmdFlagDF, cmdRead, 0, 512, 0},
		{"read DF simple", simple, cmdFlagDF, cmdRead, 0, 512, errnoInval},
		{"read past end", testSession(), 0, cmdRead, 1 << 20, 512, errnoInval},
		{"read offset overflow", testSession(), 0, cmdRead, 1<<64 - 512, 1024, errnoInval},
		{"write past end", testSession(), 0, cmdWrite, 1<<20 - 512, 1024, errnoNoSpace},
		{"zero past end", testSession(), 0, cmdWriteZeroes, 1 << 20, 512, errnoNoSpace},
		{"trim past end", testSession(), 0, cmdTrim, 1 << 20, 512, errnoInval},
		{"write max", testSession(), 0, cmdWrite, 0, 32 << 20, errnoNoSpace}, // allowed size, too far
		{"write over max", testSession(), 0, cmdWrite, 0, 32<<20 + 512, errnoInval},
		{"trim over max is fine", &session{size: 1 << 40, align: 512, maxPayload: 32 << 20}, 0, cmdTrim, 0, 1 << 31, 0},
		{"misaligned offset", testSession(), 0, cmdRead, 256, 512, errnoInval},
		{"misaligned length", testSession(), 0, cmdTrim, 0, 100, errnoInval},
		{"zero length", testSession(), 0, cmdWrite, 0, 0, errnoInval},
		{"flush", testSession(), 0, cmdFlush, 0, 0, 0},
		{"flush FUA", testSession(), cmdFlagFUA, cmdFlush, 0, 0, 0},
		{"flush with offset", testSession(), 0, cmdFlush, 512, 0, errnoInval},
		{"block status", testSession(), cmdFlagReqOne, cmdBlockStatus, 0, 1 << 20, 0},
		{"block status no context", simple, 0, cmdBlockStatus, 0, 512, errnoInval},
		{"no hole zero", testSession(), cmdFlagNoHole, cmdWriteZeroes, 0, 512, 0},
		{"no hole write", testSession(), cmdFlagNoHole, cmdWrite, 0, 512, errnoInval},
		{"unknown flag", testSession(), 1 << 9, cmdRead, 0, 512, errnoInval},
		{"fast zero", testSession(), 1 << 4, cmdWriteZeroes, 0, 512, errnoInval},
		{"cache", testSession(), 0, 5, 0, 512, errnoInval},
		{"disc is not checked here", testSession(), 0, cmdDisc, 0, 0, errnoInval},
		{"write read-only", ro, 0, cmdWrite, 0, 512, errnoPerm},
		{"trim read-only", ro, 0, cmdTrim, 0, 512, errnoPerm},
		{"read read-only", ro, 0, cmdRead, 0, 512, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := parseRequest(reqBytes(tc.flags, tc.typ, 7, tc.off, tc.n))
			if err != nil || r.Handle != 7 {
				t.Fatalf("parseRequest: %+v %v", r, err)
			}
			if got := nbdErrno(tc.s.check(r)); got != tc.errno {
				t.Fatalf("errno %d (%v), want %d", got, tc.s.check(r), tc.errno)
			}
		})
	}
}

func TestParseRequestMagic(t *testing.T) {
	b := reqBytes(0, cmdRead, 1, 0, 512)
	b[0] ^= 1
	if _, err := parseRequest(b); !errors.Is(err, ErrProtocol) {
		t.Fatalf("bad magic: %v", err)
	}
	if _, err := parseRequest(b[:10]); !errors.Is(err, ErrProtocol) {
		t.Fatalf("short header: %v", err)
	}
}

// FuzzParseRequest: any header decodes or is refused without panic, and a
// request that passes check is one the Export can take: known command,
// inside the export, aligned, payload within the maximum.
func FuzzParseRequest(f *testing.F) {
	f.Add(reqBytes(0, cmdRead, 1, 0, 4096), uint8(0))
	f.Add(reqBytes(cmdFlagFUA, cmdWrite, 2, 512, 512), uint8(1))
	f.Add(reqBytes(cmdFlagReqOne, cmdBlockStatus, 3, 0, 1<<20), uint8(2))
	f.Add(reqBytes(0xffff, 0xffff, 4, 1<<63, 0xffffffff), uint8(3))
	f.Fuzz(func(t *testing.T, b []byte, mode uint8) {
		r, err := parseRequest(b)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("error %v does not match ErrProtocol", err)
			}
			return
		}
		s := testSession()
		s.structured, s.metaAlloc, s.readOnly = mode&1 != 0, mode&2 != 0, mode&4 != 0
		if mode&8 != 0 {
			s.align = 1
		}
		cerr := s.check(r)
		errno := nbdErrno(cerr)
		if cerr != nil {
			if errno == 0 || errno == errnoIO {
				t.Fatalf("check error %v maps to errno %d", cerr, errno)
			}
			return
		}
		switch r.Type {
		case cmdFlush:
			if r.Offset != 0 || r.Length != 0 {
				t.Fatalf("flush with range accepted: %+v", r)
			}
			return
		case cmdRead, cmdWrite:
			if r.Length > s.maxPayload {
				t.Fatalf("oversized payload accepted: %+v", r)
			}
		case cmdTrim, cmdWriteZeroes, cmdBlockStatus:
		default:
			t.Fatalf("unknown command accepted: %+v", r)
		}
		if r.Length == 0 || r.Offset+uint64(r.Length) > uint64(s.size) || r.Offset > uint64(s.size) ||
			r.Offset%uint64(s.align) != 0 || r.Length%s.align != 0 {
			t.Fatalf("bad range accepted: %+v", r)
		}
		if s.readOnly && isWrite(r.Type) {
			t.Fatalf("write accepted on a read-only session: %+v", r)
		}
		if r.CommandFlags&^s.allowedFlags(r.Type) != 0 {
			t.Fatalf("flags accepted: %+v", r)
		}
	})
}
