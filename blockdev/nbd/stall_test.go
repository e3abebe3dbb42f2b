package nbd_test

import (
	"net"
	"testing"
	"time"

	"github.com/tsumiki-storage/tsumiki/blockdev/nbd"
	"github.com/tsumiki-storage/tsumiki/blockdev/nbd/nbdtest"
)

// TestStalledConnectionLeftByClient: a request that waited unread behind
// a stalled connection's full slots does not start once room comes back
// if the client has closed its end without NBD_CMD_DISC meanwhile; it
// has sent it again elsewhere, and a write over it there is not
// overwritten. It does start if the client sent NBD_CMD_DISC after it, or
// is still there.
func TestStalledConnectionLeftByClient(t *testing.T) {
	const stall = 700 * time.Millisecond
	for _, tc := range []struct {
		name    string
		end     func(a *rawClient)
		want    string // at offset 0 once all is done
		badData bool   // a WRITE too large to be valid is sent between the two
	}{
		{"closed without DISC", func(a *rawClient) { a.nc.Close() }, "new", false},
		{"closed without DISC, an invalid WRITE among them", func(a *rawClient) { a.nc.Close() }, "new", true},
		{"DISC then closed", func(a *rawClient) {
			a.request(0, wCmdDisc, 3, 0, 0, nil)
			a.nc.(*net.TCPConn).CloseWrite()
		}, "old", false},
		{"still there", func(a *rawClient) {}, "old", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, img := newImageServer(t, func(c *nbd.Config) {
				c.MaxInFlight = 1
				c.StallCheck = stall / 2
				c.StallIdle = 50 * time.Millisecond
				c.MaxBlockSize = 64 << 10
			})
			img.Inject(nbdtest.Fault{Ops: nbdtest.OpWrite, Off: 4096, Len: 4096, Delay: stall, Times: 1})
			a, _, _ := connect(t, s.addr, "img", sessionOpts{structured: true})
			b, _, _ := connect(t, s.addr, "img", sessionOpts{structured: true})
			a.request(0, wCmdWrite, 1, 4096, 5, []byte("stall")) // holds a's only slot
			for img.Calls(nbdtest.OpWrite) == 0 {
				time.Sleep(time.Millisecond)
			}
			a.request(0, wCmdWrite, 2, 0, 3, []byte("old")) // waits behind it
			if tc.badData {
				a.request(0, wCmdWrite, 5, 16384, 128<<10, make([]byte, 128<<10))
			}
			a.request(0, wCmdWrite, 4, 8192, 3, []byte("two")) // and this one in the socket
			time.Sleep(50 * time.Millisecond)
			tc.end(a)
			if tc.want == "new" { // the client sent it again on b, then wrote over it
				for _, data := range []string{"old", "new"} {
					if r := b.do(0, wCmdWrite, 0, 3, []byte(data)); r.errno != 0 {
						t.Fatalf("write on the second connection: %+v", r)
					}
				}
			}
			if tc.name == "still there" {
				if r := a.readReply(0); r.handle != 1 || r.errno != 0 {
					t.Fatalf("first reply: %+v", r)
				}
				for _, h := range []uint64{2, 4} {
					if r := a.readReply(0); r.handle != h || r.errno != 0 {
						t.Fatalf("a write behind the stall: %+v", r)
					}
				}
			}
			time.Sleep(stall + 300*time.Millisecond) // past the stall, and the old write's start
			if r := b.do(0, wCmdRead, 0, 3, nil); r.errno != 0 || string(r.data()) != tc.want {
				t.Fatalf("read: %q (errno %d), want %q", r.data(), r.errno, tc.want)
			}
			want2 := "two"
			if tc.want == "new" {
				want2 = "\x00\x00\x00"
			}
			if r := b.do(0, wCmdRead, 8192, 3, nil); r.errno != 0 || string(r.data()) != want2 {
				t.Fatalf("read at 8192: %q (errno %d), want %q", r.data(), r.errno, want2)
			}
		})
	}
}
