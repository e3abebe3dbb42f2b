package nfsgw

import (
	nfs "github.com/willscott/go-nfs"
)

// FSINFO3resok properties (RFC 1813).
const (
	fsfLink        = 0x0001
	fsfSymlink     = 0x0002
	fsfHomogeneous = 0x0008
	fsfCanSetTime  = 0x0010
)

// fsinfo values other than the transfer sizes, as go-nfs v0.0.4 sends
// them.
const (
	fsinfoMult        = 4096
	fsinfoDtpref      = 8192
	fsinfoMaxFileSize = 1 << 62
)

// nfsFSInfo answers FSINFO. go-nfs v0.0.4 advertises 1 GiB for rtmax,
// rtpref, wtmax and wtpref; a client that believed it would send WRITEs
// larger than an RPC record may be here (maxRecord) and lose its
// connection. The gateway advertises maxData (1 MiB), what the Linux
// client and libnfs use anyway, and answers the rest as go-nfs did.
func (s *Server) nfsFSInfo(args []byte) []byte {
	r := &xdrReader{b: args}
	fh := r.opaque(nfsHandleMaxLen)
	if r.err != nil {
		return fsinfoFailure(r.err)
	}
	name, err := s.fs.pathOf(fh)
	if err != nil {
		return fsinfoFailure(err)
	}
	var attr *statInfo
	if fi, err := s.fs.Lstat(name); err == nil {
		attr, _ = fi.(*statInfo)
	}
	props := uint32(fsfLink | fsfSymlink | fsfHomogeneous)
	if !s.fs.readOnly {
		props |= fsfCanSetTime
	}
	w := &xdrWriter{b: make([]byte, 0, 160)}
	w.u32(uint32(nfs.NFSStatusOk))
	appendPostOp(w, attr)
	w.u32(maxData) // rtmax
	w.u32(maxData) // rtpref
	w.u32(fsinfoMult)
	w.u32(maxData) // wtmax
	w.u32(maxData) // wtpref
	w.u32(fsinfoMult)
	w.u32(fsinfoDtpref)
	w.u64(fsinfoMaxFileSize)
	w.u32(0) // time_delta: 1 ns
	w.u32(1)
	w.u32(props)
	return w.b
}

// fsinfoFailure is FSINFO3resfail: status and no attributes.
func fsinfoFailure(err error) []byte {
	w := &xdrWriter{}
	w.u32(uint32(nfsStatus(err)))
	w.u32(0)
	return w.b
}
