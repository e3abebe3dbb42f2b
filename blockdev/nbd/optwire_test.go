package nbd

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func infoBytes(name string, infos ...uint16) []byte {
	b := be.AppendUint32(nil, uint32(len(name)))
	b = append(b, name...)
	b = be.AppendUint16(b, uint16(len(infos)))
	for _, i := range infos {
		b = be.AppendUint16(b, i)
	}
	return b
}

func metaBytes(name string, queries ...string) []byte {
	b := be.AppendUint32(nil, uint32(len(name)))
	b = append(b, name...)
	b = be.AppendUint32(b, uint32(len(queries)))
	for _, q := range queries {
		b = be.AppendUint32(b, uint32(len(q)))
		b = append(b, q...)
	}
	return b
}

func TestParseInfoRequest(t *testing.T) {
	tests := []struct {
		name  string
		data  []byte
		want  string
		infos int
		bad   bool
	}{
		{"plain", infoBytes("pool/img"), "pool/img", 0, false},
		{"infos", infoBytes("a", infoName, infoBlockSize), "a", 2, false},
		{"empty name", infoBytes(""), "", 0, false},
		{"empty data", nil, "", 0, true},
		{"name longer than data", be.AppendUint32(nil, 100), "", 0, true},
		{"name length huge", be.AppendUint32(nil, 0xffffffff), "", 0, true},
		{"missing count", infoBytes("a")[:5], "", 0, true},
		{"count too big", append(infoBytes("a"), 0), "", 0, true},
		{"trailing byte", append(infoBytes("a", 1), 9), "", 0, true},
		{"name too long", infoBytes(strings.Repeat("x", maxStringLen+1)), "", 0, true},
		{"name NUL", infoBytes("a\x00b"), "", 0, true},
		{"name not UTF-8", infoBytes("\xff"), "", 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := parseInfoRequest(tc.data)
			if tc.bad {
				if !errors.Is(err, ErrBadOption) {
					t.Fatalf("err %v, want ErrBadOption", err)
				}
				return
			}
			if err != nil || r.name != tc.want || len(r.infos) != tc.infos {
				t.Fatalf("got %+v, %v", r, err)
			}
		})
	}
}

func TestParseMetaContextRequest(t *testing.T) {
	tests := []struct {
		name    string
		data    []byte
		queries []string
		bad     bool
	}{
		{"none", metaBytes("img"), []string{}, false},
		{"two", metaBytes("img", "base:allocation", "x:y"), []string{"base:allocation", "x:y"}, false},
		{"empty query", metaBytes("img", ""), []string{""}, false},
		{"count lies", be.AppendUint32(metaBytes("img")[:7], 1<<31), nil, true},
		{"query truncated", metaBytes("img", "base:allocation")[:20], nil, true},
		{"trailing", append(metaBytes("img", "q"), 1), nil, true},
		{"short", []byte{0, 0}, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := parseMetaContextRequest(tc.data)
			if tc.bad {
				if !errors.Is(err, ErrBadOption) {
					t.Fatalf("err %v, want ErrBadOption", err)
				}
				return
			}
			if err != nil || r.name != "img" || strings.Join(r.queries, "|") != strings.Join(tc.queries, "|") {
				t.Fatalf("got %+v, %v", r, err)
			}
		})
	}
}

// FuzzParseOptionHeader: any 16 bytes decode without panic, and only the
// option magic is accepted.
func FuzzParseOptionHeader(f *testing.F) {
	f.Add(be.AppendUint32(be.AppendUint32(be.AppendUint64(nil, magicOption), optGo), 10))
	f.Add(make([]byte, 16))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := parseOptionHeader(b)
		if err == nil && (len(b) < optionHeaderLen || h.OptionMagic != magicOption) {
			t.Fatalf("accepted % x", b)
		}
		if err != nil && !errors.Is(err, ErrProtocol) {
			t.Fatalf("error %v does not match ErrProtocol", err)
		}
	})
}

// FuzzParseClientFlags: only the two known flags are accepted.
func FuzzParseClientFlags(f *testing.F) {
	f.Add([]byte{0, 0, 0, 3})
	f.Add([]byte{0, 0, 0, 4})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _, err := parseClientFlags(b)
		ok := len(b) == 4 && be.Uint32(b)&^clientFlagsKnown == 0
		if (err == nil) != ok {
			t.Fatalf("parseClientFlags(% x) = %v", b, err)
		}
	})
}

// FuzzParseInfoRequest: never panics; what it accepts re-encodes to the
// same bytes and obeys the string rules.
func FuzzParseInfoRequest(f *testing.F) {
	f.Add(infoBytes("pool/img", infoName, infoDescription, infoBlockSize))
	f.Add(infoBytes(""))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := parseInfoRequest(data)
		if err != nil {
			if !errors.Is(err, ErrBadOption) {
				t.Fatalf("error %v does not match ErrBadOption", err)
			}
			return
		}
		if checkString([]byte(r.name)) != nil {
			t.Fatalf("accepted a bad name %q", r.name)
		}
		if got := infoBytes(r.name, r.infos...); !bytes.Equal(got, data) {
			t.Fatalf("re-encoded % x, want % x", got, data)
		}
	})
}

// FuzzParseMetaContextRequest: never panics, never allocates more queries
// than the data can hold, and round-trips.
func FuzzParseMetaContextRequest(f *testing.F) {
	f.Add(metaBytes("pool/img", "base:allocation"))
	f.Add(metaBytes("", "base:", ""))
	f.Add([]byte{0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := parseMetaContextRequest(data)
		if err != nil {
			if !errors.Is(err, ErrBadOption) {
				t.Fatalf("error %v does not match ErrBadOption", err)
			}
			return
		}
		if got := metaBytes(r.name, r.queries...); !bytes.Equal(got, data) {
			t.Fatalf("re-encoded % x, want % x", got, data)
		}
	})
}
