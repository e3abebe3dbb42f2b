package nbd

import (
	"bufio"
	"context"
	"fmt"
	"net"

	"go.uber.org/zap"
)

// KernelSession is an export opened for the Linux kernel's NBD client,
// which skips the handshake: the program that configures /dev/nbdX tells the
// kernel the size and Flags itself, then hands it one end of a socket pair
// whose other end Serve answers in transmission phase (simple replies, as
// the kernel uses them).
type KernelSession struct {
	s    *Server
	sess *session
}

// OpenKernel opens the export name for a kernel client. Close it with
// Serve (which closes the export when the connection ends) or Close.
// Errors: those of Opener.Open (ErrExportNotFound, ErrRefused, ...).
func (s *Server) OpenKernel(ctx context.Context, name string) (*KernelSession, error) {
	n := &negotiation{s: s, ctx: ctx}
	name, exp, ro, err := n.open(name)
	if err != nil {
		return nil, err
	}
	sess := n.session(name, exp, ro, true)
	return &KernelSession{s: s, sess: sess}, nil
}

// Size is the export's size in bytes.
func (k *KernelSession) Size() int64 { return k.sess.size }

// Flags are the transmission flags to give the kernel (NBD_SET_FLAGS).
func (k *KernelSession) Flags() uint16 { return k.sess.flags }

// BlockSize is the block size to give the kernel (NBD_SET_BLKSIZE).
func (k *KernelSession) BlockSize() int64 { return int64(k.s.cfg.PreferredBlockSize) }

// Serve answers the kernel's requests on nc until the kernel disconnects
// or ctx ends, then closes the export. It returns nil for a clean end.
func (k *KernelSession) Serve(ctx context.Context, nc net.Conn) error {
	defer nc.Close()
	defer k.Close()
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(cctx, func() { _ = nc.Close() })
	defer stop()
	log := k.s.log.With(zap.String("export", k.sess.name), zap.String("client", "kernel"))
	c := newConn(cctx, cancel, k.s, nc, bufio.NewReaderSize(nc, 64<<10), k.sess, log)
	if err := c.serve(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("nbd: kernel connection: %w", err)
	}
	return nil
}

// Close closes the export if Serve did not.
func (k *KernelSession) Close() error {
	if k.sess.export == nil {
		return nil
	}
	err := k.sess.export.Close()
	k.sess.export = nil
	return err
}
