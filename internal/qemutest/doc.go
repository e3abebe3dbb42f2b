// Package qemutest runs a shell script inside a real Linux kernel: a stock
// Debian kernel booted in QEMU, for the tests that need the kernel's own
// clients (the NBD block device, the NFS client) rather than ours. It is a
// test helper: only _test.go files import it.
//
// # Using it
//
//	func TestKernelThing(t *testing.T) {
//		qemutest.SkipIfUnavailable(t) // skips saying what is missing
//		res, err := qemutest.Run(t.Context(), t, qemutest.Config{
//			Script: "set -eux\nnbd-client 10.0.2.2 " + port + " /dev/nbd0 -N pool/img -timeout 30\n...",
//			Share:  t.TempDir(), // /host in the guest: binaries in, results out
//			Log:    qemutest.LineLogger(t),
//		})
//		if err != nil { t.Fatal(err) }            // no boot, timeout, no exit marker
//		if res.ExitCode != 0 { t.Fatal("job failed (console above)") }
//	}
//
// Each Run boots a fresh guest (about 7 s under TCG on this project's
// machines; the NBD test here, boot included, about 10 s) and returns the
// script's exit status and the whole serial console. Servers under test
// listen on the host's 127.0.0.1; the guest reaches them as 10.0.2.2. The
// guest is 10.0.2.15/24 on QEMU's user network with no default route, so it
// can reach nothing but the host. A host folder can be shared read-write
// at /host (virtio-9p); a raw image can be attached as /dev/vda
// (Config.ExtraDisk, also /dev/disk/by-id/virtio-extra), more after it
// (Config.Disks, also /dev/disk/by-id/virtio-SERIAL), and each can have
// every write and flush the guest completes logged (package writelog
// reads the logs).
//
// In the guest: busybox, nbd-client, e2fsprogs (mkfs.ext4, e2fsck, ...),
// mkfs.xfs and xfs_repair, mount.nfs, util-linux's mount, umount, losetup,
// blkid, blockdev, blkdiscard, fstrim, wipefs, lsblk, findmnt, fallocate,
// and fio (from a read-only ext4 disk mounted at /opt/fio; a wrapper on
// PATH runs it). /init loads, before the script: virtio pci, net, blk and
// rng, 9p, nbd (16 devices), loop, ext4 (crc16, crc32c, mbcache, jbd2),
// xfs, sunrpc, grace, lockd, nfs and nfsv3. The NFS client mounts without a
// portmapper with
//
//	mount -t nfs -o vers=3,proto=tcp,port=P,mountport=P,nolock 10.0.2.2:/ /mnt
//
// # Accelerator
//
// QEMU uses TCG (emulation) unless KVM works: a host whose /dev/kvm is
// nested PVM (/sys/module/kvm_pvm exists, as on this project's machines)
// gets TCG without trying, since a stock kernel hangs under it; elsewhere the
// first Run of a test binary boots once with KVM and falls back to TCG if
// that fails. TSUMIKI_QEMU_ACCEL=tcg or =kvm forces the choice. Under TCG
// I/O is emulation-bound (tens of MB/s): the guest is for correctness, not
// for speed figures.
//
// # The guest build and its cache
//
// scripts/guest/build.sh builds the guest from Debian packages (apt-get
// download, dpkg-deb -x into a scratch folder; nothing goes into the host's
// /boot or /lib/modules) into ${TSUMIKI_GUEST_DIR:-/var/tmp/tsumiki-guest}:
// vmlinuz, initramfs.img, fio.ext4, release, and debs/ (the downloaded
// packages, about 120 MB, kept for rebuilds). Run calls it once per test
// binary; when the cache is up to date it returns at once (a first build
// takes about a minute with downloads, a rebuild from debs/ about 20 s).
// It rebuilds when build.sh differs from the one that made the cache (the
// cache's stamps hold its sha256). By hand:
//
//	scripts/guest/build.sh              # build or check the default cache
//	scripts/guest/build.sh DIR          # another cache folder
//	rm /var/tmp/tsumiki-guest/guest.ok  # then build.sh: rebuild from debs/
//	rm /var/tmp/tsumiki-guest/debs.ok   # then build.sh: newer Debian packages too
//
// # Host packages
//
// Debian packages the host needs (the Makefile's deps target installs
// them; build.sh installs the first three itself when missing, as root or
// with sudo):
//
//	qemu-system-x86 cpio e2fsprogs nbdkit
//
// (nbdkit only for this package's NBD test; apt, dpkg and util-linux, also
// used, are part of every Debian system.) Without qemu-system-x86_64 the
// tests that boot a guest skip, saying so; the pure tests still run.
package qemutest
