// Package attach connects an NBD transmission stream to the Linux kernel's
// NBD client, so that an image appears as /dev/nbdX (what `tsumiki map`
// does, like rbd-nbd): the program serves one end of a socket pair, the
// kernel reads and writes through the other.
//
// It uses the kernel's ioctl interface (NBD_SET_SOCK, NBD_DO_IT, ...): the
// handshake is skipped, the program tells the kernel the size, block size
// and transmission flags itself. NBD_DO_IT blocks until the device is
// disconnected (Detach from any process, or the socket closing), so Attach
// runs it on a locked OS thread and returns a wait function.
//
// Requirements, each checked with its own error: Linux, root (CAP_SYS_ADMIN)
// and the nbd module (modprobe nbd). Mapped devices are recorded as small
// JSON files under a state directory (default /run/tsumiki/mapped) so that
// `tsumiki showmapped` and `unmap` can find the process that serves them.
//
// Who may import it: cmd/tsumiki. It imports no other package of the module.
package attach
