package wire

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"reflect"
	"testing"
)

// TestFrameWriterAndReadResponse sends responses with small and large data
// (the large ones through writev, without a copy) over a real socket and
// reads them back with ReadResponse, into the caller's buffer where its
// length matches and into a new one where it does not.
func TestFrameWriterAndReadResponse(t *testing.T) {
	a, b := socketPair(t)
	big := bytes.Repeat([]byte("0123456789abcdef"), 40<<10) // 640 KiB
	sent := []Response{
		{ID: 1, Status: StatusOK, Epoch: 3, Leader: -1, A: 9, Data: []byte("small")},
		{ID: 2, Status: StatusNotLeader, Leader: 2, Msg: "not the leader"},
		{ID: 3, Data: big},
		{ID: 4, Data: big[:directPayload-1]},
		{ID: 5, Msg: "x", Data: big[:directPayload]},
	}
	go func() {
		fw := NewFrameWriter(a, 4096)
		for i := range sent {
			if err := fw.WriteFrame(FrameResponse, AppendResponseHead(nil, &sent[i]), sent[i].Data); err != nil {
				t.Error(err)
			}
		}
		if err := fw.Flush(); err != nil {
			t.Error(err)
		}
	}()
	r := bufio.NewReaderSize(b, 8192)
	for i, want := range sent {
		var dst []byte
		if i%2 == 0 {
			dst = make([]byte, len(want.Data)) // ids 1, 3, 5: read in place
		}
		got, err := ReadResponse(r, func(id uint64) []byte {
			if id != want.ID {
				t.Errorf("into called with id %d, want %d", id, want.ID)
			}
			return dst
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(dst) > 0 && &got.Data[0] != &dst[0] {
			t.Errorf("response %d: data not read into the caller's buffer", want.ID)
		}
		if len(want.Data) == 0 {
			want.Data = got.Data // nil vs empty
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("response %d differs", want.ID)
		}
	}
}

// TestReadResponseRejects: another frame type, a body that does not add
// up, and a frame over the limit.
func TestReadResponseRejects(t *testing.T) {
	ok := AppendResponse(nil, &Response{ID: 7, Msg: "m", Data: []byte("data")})
	frame := func(typ byte, body []byte) *bufio.Reader {
		var buf bytes.Buffer
		w := bufio.NewWriter(&buf)
		if err := WriteFrame(w, typ, body); err != nil {
			t.Fatal(err)
		}
		w.Flush()
		return bufio.NewReader(&buf)
	}
	if _, err := ReadResponse(frame(FrameResponse, ok), nil); err != nil {
		t.Fatalf("well-formed response refused: %v", err)
	}
	for name, r := range map[string]*bufio.Reader{
		"request frame": frame(FrameRequest, ok),
		"trailing byte": frame(FrameResponse, append(ok[:len(ok):len(ok)], 0)),
		"short":         frame(FrameResponse, ok[:20]),
		"message long":  frame(FrameResponse, append(append([]byte{}, ok[:37]...), 0xff, 0, 0, 0)),
	} {
		if _, err := ReadResponse(r, nil); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", name, err)
		}
	}
	huge := []byte{0xff, 0xff, 0xff, 0xff, FrameResponse}
	if _, err := ReadResponse(bufio.NewReader(bytes.NewReader(huge)), nil); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("huge frame: got %v, want ErrFrameTooLarge", err)
	}
}

// FuzzReadResponse: the streaming decoder accepts exactly what
// DecodeResponse accepts, with the same result.
func FuzzReadResponse(f *testing.F) {
	f.Add(AppendResponse(nil, &Response{ID: 1, Msg: "hi", Data: []byte("abc")}))
	f.Add(AppendResponse(nil, &Response{}))
	f.Fuzz(func(t *testing.T, body []byte) {
		var buf bytes.Buffer
		w := bufio.NewWriter(&buf)
		if err := WriteFrame(w, FrameResponse, body); err != nil {
			t.Fatal(err)
		}
		w.Flush()
		got, gerr := ReadResponse(bufio.NewReader(&buf), func(uint64) []byte { return make([]byte, 3) })
		want, werr := DecodeResponse(body)
		if (gerr == nil) != (werr == nil) {
			t.Fatalf("ReadResponse: %v, DecodeResponse: %v", gerr, werr)
		}
		if gerr == nil && (got.ID != want.ID || got.Msg != want.Msg || !bytes.Equal(got.Data, want.Data) ||
			got.Status != want.Status || got.A != want.A || got.B != want.B || got.Leader != want.Leader || got.Epoch != want.Epoch) {
			t.Fatalf("ReadResponse %+v, DecodeResponse %+v", got, want)
		}
	})
}

// socketPair returns two ends of a loopback TCP connection (writev is what
// FrameWriter uses on a real socket).
func socketPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	done := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		done <- c
	}()
	a, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b := <-done
	if b == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}
