package osd

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"time"

	"go.uber.org/zap"

	"github.com/tsumiki-storage/tsumiki/storage/chunkstore"
	"github.com/tsumiki-storage/tsumiki/storage/wire"
)

// Copies over the cluster network (copy.go): the installing OSD dials the
// source's cluster address on a connection of its own, so that megabytes
// of objects never queue raft's heartbeats behind them (wire/copy.go).

// copyIdle bounds the wait for the next frame of a copy: the source reads
// and sends one object (at most 32 MiB) at a time.
const copyIdle = time.Minute

// CopyPG implements PGCopier over the cluster network.
func (t *TCPTransport) CopyPG(ctx context.Context, from int32, pg PG, min uint64, put func(CopiedObject) error) (uint64, error) {
	addr := t.addrOf(from)
	if addr == "" {
		return 0, fmt.Errorf("osd.%d has no cluster address in the map", from)
	}
	d := net.Dialer{Timeout: 5 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	req := binary.BigEndian.AppendUint32(wire.AppendFrameHeader(nil, wire.FrameHello, 4), uint32(t.self))
	body := wire.AppendCopyRequest(nil, wire.CopyRequest{Pool: pg.Pool, PG: pg.Seq, Min: min})
	req = append(wire.AppendFrameHeader(req, wire.FrameCopy, len(body)), body...)
	if _, err := conn.Write(req); err != nil {
		return 0, err
	}
	r := bufio.NewReaderSize(conn, 1<<20)
	for {
		_ = conn.SetReadDeadline(time.Now().Add(copyIdle))
		typ, body, err := wire.ReadFrame(r)
		if err != nil {
			if ctx.Err() != nil {
				return 0, ErrTimeout
			}
			return 0, fmt.Errorf("copy from osd.%d: %w", from, err)
		}
		switch typ {
		case wire.FrameCopyObject, wire.FrameCopyDamaged:
			decode := wire.DecodeCopyObject
			if typ == wire.FrameCopyDamaged {
				decode = wire.DecodeCopyDamaged
			}
			o, err := decode(body)
			if err != nil {
				return 0, err
			}
			co := CopiedObject{Name: o.Name, Size: int64(len(o.Data)), Version: o.Version, Data: o.Data}
			for _, d := range o.Damaged {
				co.Damaged = append(co.Damaged, chunkstore.Range{Off: int64(d.Off), Len: int64(d.Len)})
			}
			if err := put(co); err != nil {
				return 0, err
			}
		case wire.FrameCopyEnd:
			end, err := wire.DecodeCopyEnd(body)
			if err != nil {
				return 0, err
			}
			if end.Err != "" {
				return 0, fmt.Errorf("copy from osd.%d: %s", from, end.Err)
			}
			return end.Through, nil
		default:
			return 0, fmt.Errorf("%w: frame type %d in a copy from osd.%d", wire.ErrMalformed, typ, from)
		}
	}
}

// serveCopy answers a copy request on a cluster connection (servePeer)
// from this node's replica: Node.CopyOut, one frame per object.
func serveCopy(ctx context.Context, c net.Conn, r *bufio.Reader, n *Node, peer int32, log *zap.Logger) {
	_, body, err := wire.ReadFrame(r)
	if err != nil {
		return
	}
	req, err := wire.DecodeCopyRequest(body)
	if err != nil {
		log.Warn("bad copy request", zap.Int32("peer", peer), zap.Error(err))
		return
	}
	pg := PG{Pool: req.Pool, Seq: req.PG}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	w := bufio.NewWriterSize(c, 1<<20)
	objects := 0
	through, err := n.CopyOut(ctx, pg, req.Min, func(o CopiedObject) error {
		objects++
		wo := wire.CopyObject{Name: o.Name, Version: o.Version, Data: o.Data}
		if len(o.Damaged) == 0 {
			return wire.WriteFrame(w, wire.FrameCopyObject, wire.AppendCopyObject(nil, wo))
		}
		for _, d := range o.Damaged {
			wo.Damaged = append(wo.Damaged, wire.CopyRange{Off: uint64(d.Off), Len: uint64(d.Len)})
		}
		return wire.WriteFrame(w, wire.FrameCopyDamaged, wire.AppendCopyDamaged(nil, wo))
	})
	end := wire.CopyEnd{Through: through}
	if err != nil {
		end.Err = err.Error()
		if !errors.Is(err, ErrInstalling) {
			log.Warn("a copy of a pg for another osd failed", zap.Stringer("pg", pg), zap.Int32("peer", peer), zap.Error(err))
		}
	} else {
		log.Info("copied a pg to another osd for its snapshot", zap.Stringer("pg", pg), zap.Int32("peer", peer),
			zap.Int("objects", objects), zap.Uint64("through", through))
	}
	if wire.WriteFrame(w, wire.FrameCopyEnd, wire.AppendCopyEnd(nil, end)) == nil {
		_ = w.Flush()
	}
}
