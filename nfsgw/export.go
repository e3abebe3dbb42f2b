package nfsgw

import (
	"fmt"
	"net/netip"
	"strings"
)

// Export is one export rule. The gateway serves one folder; every rule
// exports it, under Path, to the clients in Networks. Rules are matched in
// order: MNT picks the first rule with the asked path whose networks hold
// the client; NFS calls pick the first rule whose networks hold the client.
type Export struct {
	// Path is the name clients mount, e.g. "/data". Required, absolute.
	Path string
	// Networks are the client networks allowed. Required: use 0.0.0.0/0
	// and ::/0 to allow everyone.
	Networks []netip.Prefix
	// ReadOnly refuses every change with NFS3ERR_ROFS.
	ReadOnly bool
	// RootSquash makes calls with uid 0 run as AnonUID (and gid 0 as
	// AnonGID, group 0 dropped).
	RootSquash bool
	// AnonUID and AnonGID are the ids root is squashed to and AUTH_NULL
	// callers run as. Both zero means 65534 (nobody/nogroup).
	AnonUID uint32
	AnonGID uint32
	// UnstableWrites lets a WRITE be as durable as the client asked
	// (NFSv3's contract, the default of knfsd and nfs-ganesha): an
	// UNSTABLE one is answered UNSTABLE and made durable by the client's
	// COMMIT (on close and fsync). Off (the default), every WRITE is synced
	// before its reply and answered FILE_SYNC, whatever the client asked.
	// Either way a reply never claims more than was done.
	UnstableWrites bool
}

// Validate returns an error wrapping ErrConfig for the first broken rule.
func (e Export) Validate() error {
	switch {
	case !strings.HasPrefix(e.Path, "/"):
		return fmt.Errorf("%w: export path %q is not absolute", ErrConfig, e.Path)
	case len(e.Path) > 1024:
		return fmt.Errorf("%w: export path longer than 1024 bytes", ErrConfig)
	case len(e.Networks) == 0:
		return fmt.Errorf("%w: export %s has no client networks (use 0.0.0.0/0 for everyone)", ErrConfig, e.Path)
	}
	return nil
}

// allows reports whether the client address is in the rule's networks.
func (e Export) allows(client netip.Addr) bool {
	client = client.Unmap()
	for _, n := range e.Networks {
		if n.Contains(client) {
			return true
		}
	}
	return false
}

// exportFor returns the first rule for path (any path if path is empty)
// that allows client; found reports whether a rule with that path exists
// at all (to tell MNT3ERR_NOENT from MNT3ERR_ACCES).
func exportFor(exports []Export, path string, client netip.Addr) (e Export, ok bool, found bool) {
	for _, x := range exports {
		if path != "" && x.Path != path {
			continue
		}
		found = true
		if x.allows(client) {
			return x, true, true
		}
	}
	return Export{}, false, found
}

// anon returns the identity of squashed root and of AUTH_NULL callers.
func (e Export) anon() Cred {
	if e.AnonUID == 0 && e.AnonGID == 0 {
		return Cred{UID: 65534, GID: 65534}
	}
	return Cred{UID: e.AnonUID, GID: e.AnonGID}
}

// credFor returns the identity a call runs as under this rule: nil for
// root without squashing (the gateway's own identity), else the caller's
// AUTH_SYS ids after squashing, or anon for AUTH_NULL.
func (e Export) credFor(flavor uint32, a authSysCred) *Cred {
	if flavor != authSys {
		c := e.anon()
		return &c
	}
	c := Cred{UID: a.UID, GID: a.GID, Groups: a.GIDs}
	if e.RootSquash {
		an := e.anon()
		if c.UID == 0 {
			c.UID = an.UID
		}
		if c.GID == 0 {
			c.GID = an.GID
		}
		var gs []uint32
		for _, g := range c.Groups {
			if g != 0 {
				gs = append(gs, g)
			}
		}
		c.Groups = gs
	}
	if c.UID == 0 {
		return nil
	}
	return &c
}
