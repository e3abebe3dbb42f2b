// Package stripe maps byte ranges of a block image onto objects, the way
// Ceph RBD stripes an image: the image is cut into stripe units of
// StripeUnit bytes; consecutive units go round-robin to StripeCount objects
// (an object set), each object holding ObjectSize bytes, and when every
// object of a set is full the next set begins. With the defaults (stripe
// unit = object size, stripe count 1) object n simply holds the image bytes
// [n*ObjectSize, (n+1)*ObjectSize).
//
//	stripe count 3, 2 units per object:
//	            object 0   object 1   object 2
//	stripe 0    unit 0     unit 1     unit 2
//	stripe 1    unit 3     unit 4     unit 5     (object set 0)
//	stripe 2    unit 6 →   object 3 …            (object set 1)
//
// Within one object, higher object offsets always hold higher image
// offsets, so the part of an object that lies below an image size is a
// prefix of the object (ObjectLen): shrinking an image truncates objects,
// never punches holes in them.
//
// The package is pure (STYLE.md habit 1): no IO, no goroutines, no clock;
// standard library only. Every function is safe for concurrent use.
// Functions other than Validate assume a valid layout (see Layout.Validate)
// and non-negative offsets and lengths.
//
// Who may import it: blockdev/image, the NBD and NFS gateways, cmd/tsumiki
// and tests. It imports nothing from this module.
package stripe
