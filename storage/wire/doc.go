// Package wire defines tsumiki's storage protocol: the length-prefixed
// frames exchanged between clients and OSDs (public network) and between OSDs
// (cluster network), and the binary encoding of their bodies.
//
// Every decoder here takes bytes from the network and must never panic or
// allocate more than the frame limit, whatever it is fed (see the fuzz tests).
//
// Who may import it: storage/osd and storage/client (and their tests). It
// imports only the standard library.
package wire
