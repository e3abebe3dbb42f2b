package client

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/tsumiki-storage/tsumiki/storage/wire"
)

var errConnClosed = errors.New("client: connection closed")

// conn is one pipelined connection to an OSD: many requests in flight,
// answers matched by id.
type conn struct {
	addr string
	c    net.Conn

	wmu sync.Mutex // guards w
	w   *bufio.Writer

	mu      sync.Mutex // guards the following
	pending map[uint64]chan wire.Response
	nextID  uint64
	err     error
}

func dial(ctx context.Context, addr string) (*conn, error) {
	d := net.Dialer{Timeout: 3 * time.Second, KeepAlive: 15 * time.Second}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	cn := &conn{addr: addr, c: c, w: bufio.NewWriterSize(c, 128<<10), pending: map[uint64]chan wire.Response{}}
	go cn.readLoop()
	return cn, nil
}

func (cn *conn) readLoop() {
	r := bufio.NewReaderSize(cn.c, 256<<10)
	var err error
	for {
		var typ byte
		var body []byte
		typ, body, err = wire.ReadFrame(r)
		if err != nil {
			break
		}
		if typ != wire.FrameResponse {
			err = fmt.Errorf("unexpected frame type %d", typ)
			break
		}
		resp, derr := wire.DecodeResponse(body)
		if derr != nil {
			err = derr
			break
		}
		cn.mu.Lock()
		ch := cn.pending[resp.ID]
		delete(cn.pending, resp.ID)
		cn.mu.Unlock()
		if ch != nil {
			ch <- resp
		}
	}
	cn.fail(err)
}

func (cn *conn) fail(err error) {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if cn.err == nil {
		cn.err = fmt.Errorf("%w: %s: %v", errConnClosed, cn.addr, err)
	}
	for id, ch := range cn.pending {
		close(ch)
		delete(cn.pending, id)
	}
	cn.c.Close()
}

func (cn *conn) broken() bool {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return cn.err != nil
}

// call sends req and waits for its answer or ctx.
func (cn *conn) call(ctx context.Context, req *wire.Request) (wire.Response, error) {
	ch := make(chan wire.Response, 1)
	cn.mu.Lock()
	if cn.err != nil {
		err := cn.err
		cn.mu.Unlock()
		return wire.Response{}, err
	}
	cn.nextID++
	req.ID = cn.nextID
	cn.pending[req.ID] = ch
	cn.mu.Unlock()

	body := wire.AppendRequest(make([]byte, 0, 64+len(req.Object)+len(req.Data)), req)
	cn.wmu.Lock()
	cn.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	err := wire.WriteFrame(cn.w, wire.FrameRequest, body)
	if err == nil {
		err = cn.w.Flush()
	}
	cn.wmu.Unlock()
	if err != nil {
		cn.fail(err)
		return wire.Response{}, fmt.Errorf("%w: %s: %v", errConnClosed, cn.addr, err)
	}
	select {
	case resp, ok := <-ch:
		if !ok {
			return wire.Response{}, cn.closedErr()
		}
		return resp, nil
	case <-ctx.Done():
		cn.mu.Lock()
		delete(cn.pending, req.ID)
		cn.mu.Unlock()
		return wire.Response{}, ctx.Err()
	}
}

func (cn *conn) closedErr() error {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return cn.err
}
