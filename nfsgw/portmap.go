package nfsgw

// Portmapper (RFC 1833, PMAP version 2): GETPORT and DUMP of the programs
// this gateway serves. SET and UNSET are refused (answer false): nothing
// else registers with this portmapper.
const (
	progPortmap = 100000
	pmapVers    = 2

	pmapProcNull    = 0
	pmapProcSet     = 1
	pmapProcUnset   = 2
	pmapProcGetport = 3
	pmapProcDump    = 4

	ipprotoTCP = 6
	ipprotoUDP = 17
)

// pmapMapping is one portmapper entry (and the GETPORT argument).
type pmapMapping struct {
	Prog, Vers, Prot, Port uint32
}

// decodePmapMapping decodes a GETPORT/SET/UNSET argument.
func decodePmapMapping(args []byte) (pmapMapping, error) {
	r := &xdrReader{b: args}
	m := pmapMapping{Prog: r.u32(), Vers: r.u32(), Prot: r.u32(), Port: r.u32()}
	return m, r.err
}

// pmapTable lists what the gateway serves: NFS v3 over TCP, MOUNT v1-3
// over TCP and UDP on the NFS port, and the portmapper itself.
func (s *Server) pmapTable() []pmapMapping {
	nfsPort := uint32(s.nfsPort())
	t := []pmapMapping{
		{progNFS, nfsVers, ipprotoTCP, nfsPort},
	}
	for v := uint32(mountVersMin); v <= mountVersMax; v++ {
		t = append(t, pmapMapping{progMount, v, ipprotoTCP, nfsPort})
		if s.udp != nil {
			t = append(t, pmapMapping{progMount, v, ipprotoUDP, nfsPort})
		}
	}
	if p := s.portmapPort(); p != 0 {
		t = append(t, pmapMapping{progPortmap, pmapVers, ipprotoTCP, uint32(p)})
		if s.pmapUDP != nil {
			t = append(t, pmapMapping{progPortmap, pmapVers, ipprotoUDP, uint32(p)})
		}
	}
	return t
}

// portmap answers a portmapper call.
func (s *Server) portmap(c rpcCall) []byte {
	if c.Vers != pmapVers {
		return progMismatchReply(c.XID, pmapVers, pmapVers)
	}
	w := &xdrWriter{}
	switch c.Proc {
	case pmapProcNull:
	case pmapProcSet, pmapProcUnset:
		if _, err := decodePmapMapping(c.Args); err != nil {
			return acceptedReply(c.XID, acceptGarbageArgs, nil)
		}
		w.u32(0) // false
	case pmapProcGetport:
		m, err := decodePmapMapping(c.Args)
		if err != nil {
			return acceptedReply(c.XID, acceptGarbageArgs, nil)
		}
		port := uint32(0)
		for _, e := range s.pmapTable() {
			if e.Prog == m.Prog && e.Vers == m.Vers && e.Prot == m.Prot {
				port = e.Port
				break
			}
		}
		w.u32(port)
	case pmapProcDump:
		for _, e := range s.pmapTable() {
			w.u32(1)
			w.u32(e.Prog)
			w.u32(e.Vers)
			w.u32(e.Prot)
			w.u32(e.Port)
		}
		w.u32(0)
	default:
		return acceptedReply(c.XID, acceptProcUnavail, nil)
	}
	return acceptedReply(c.XID, acceptSuccess, w.b)
}
