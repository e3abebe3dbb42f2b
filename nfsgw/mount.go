package nfsgw

import (
	"net/netip"

	"go.uber.org/zap"
	"sort"
	"strings"
)

// MOUNT protocol (RFC 1813 appendix I), versions 1 to 3.
const (
	progMount    = 100005
	mountVersMin = 1
	mountVersMax = 3

	mountProcNull    = 0
	mountProcMnt     = 1
	mountProcDump    = 2
	mountProcUmnt    = 3
	mountProcUmntAll = 4
	mountProcExport  = 5

	mnt3OK       = 0
	mnt3ErrNoEnt = 2
	mnt3ErrAcces = 13
	mnt3ErrIO    = 5

	mountPathMax = 1024
	fhSizeV1     = 32
)

// mountEntry is a client's mount, listed by DUMP.
type mountEntry struct {
	Host string
	Path string
}

// decodeMountPath decodes the dirpath argument of MNT and UMNT.
func decodeMountPath(args []byte) (string, error) {
	r := &xdrReader{b: args}
	p := r.opaque(mountPathMax)
	if r.err != nil {
		return "", r.err
	}
	return string(p), nil
}

// cleanExportPath normalises what a client asks to mount ("/data/" is "/data").
func cleanExportPath(p string) string {
	if len(p) > 1 {
		p = strings.TrimRight(p, "/")
	}
	return p
}

// mount answers a MOUNT call.
func (s *Server) mount(c rpcCall, client netip.Addr) []byte {
	if c.Vers < mountVersMin || c.Vers > mountVersMax {
		return progMismatchReply(c.XID, mountVersMin, mountVersMax)
	}
	w := &xdrWriter{}
	switch c.Proc {
	case mountProcNull:
	case mountProcMnt:
		p, err := decodeMountPath(c.Args)
		if err != nil {
			return acceptedReply(c.XID, acceptGarbageArgs, nil)
		}
		p = cleanExportPath(p)
		_, ok, found := exportFor(s.cfg.Exports, p, client)
		switch {
		case !found:
			w.u32(mnt3ErrNoEnt)
			return acceptedReply(c.XID, acceptSuccess, w.b)
		case !ok:
			s.log.Info("MNT refused: client not in the export's networks", zap.String("path", p), zap.Stringer("client", client))
			w.u32(mnt3ErrAcces)
			return acceptedReply(c.XID, acceptSuccess, w.b)
		}
		fh, err := s.fs.RootHandle()
		if err != nil {
			w.u32(mnt3ErrIO)
			return acceptedReply(c.XID, acceptSuccess, w.b)
		}
		w.u32(mnt3OK)
		if c.Vers < 3 {
			if len(fh) > fhSizeV1 {
				return acceptedReply(c.XID, acceptSuccess, []byte{0, 0, 0, mnt3ErrIO})
			}
			w.b = append(w.b, fh...)
			w.b = append(w.b, make([]byte, fhSizeV1-len(fh))...)
		} else {
			w.opaque(fh)
			w.u32(2)
			w.u32(authSys)
			w.u32(authNull)
		}
		s.addMount(mountEntry{Host: client.String(), Path: p})
	case mountProcDump:
		for _, m := range s.mounts() {
			w.u32(1)
			w.str(m.Host)
			w.str(m.Path)
		}
		w.u32(0)
	case mountProcUmnt:
		p, err := decodeMountPath(c.Args)
		if err != nil {
			return acceptedReply(c.XID, acceptGarbageArgs, nil)
		}
		s.removeMounts(client.String(), cleanExportPath(p))
	case mountProcUmntAll:
		s.removeMounts(client.String(), "")
	case mountProcExport:
		seen := map[string]bool{}
		for _, e := range s.cfg.Exports {
			if seen[e.Path] {
				continue
			}
			seen[e.Path] = true
			w.u32(1)
			w.str(e.Path)
			for _, x := range s.cfg.Exports {
				if x.Path != e.Path {
					continue
				}
				for _, n := range x.Networks {
					w.u32(1)
					w.str(n.String())
				}
			}
			w.u32(0)
		}
		w.u32(0)
	default:
		return acceptedReply(c.XID, acceptProcUnavail, nil)
	}
	return acceptedReply(c.XID, acceptSuccess, w.b)
}

func (s *Server) addMount(m mountEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mountList[m] = true
}

func (s *Server) removeMounts(host, path string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for m := range s.mountList {
		if m.Host == host && (path == "" || m.Path == path) {
			delete(s.mountList, m)
		}
	}
}

func (s *Server) mounts() []mountEntry {
	s.mu.Lock()
	out := make([]mountEntry, 0, len(s.mountList))
	for m := range s.mountList {
		out = append(out, m)
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Host != out[j].Host {
			return out[i].Host < out[j].Host
		}
		return out[i].Path < out[j].Path
	})
	return out
}
