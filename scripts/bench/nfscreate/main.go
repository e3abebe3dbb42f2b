// Command nfscreate is the small-file client of scripts/bench/nfs.sh.
// libnfs-utils has no batch-create tool, so this speaks just enough NFSv3
// over TCP itself: MOUNT MNT for the root handle, then MKDIR, CREATE, WRITE
// (and COMMIT, LOOKUP where needed), one call at a time (queue depth 1,
// like nfs-cp), AUTH_SYS as the caller's uid.
// It works against any NFSv3 server that answers MOUNT and NFS over TCP
// (nfs-ganesha, tsumiki's gateway).
//
//	nfscreate create [-n 2000] [-size 4096] [-stable file] [-max-time 60s] -dir NAME URL
//	    MKDIR NAME in the export, then per file CREATE (GUARDED, mode 0644) +
//	    one WRITE of -size bytes. -stable file (the default) sends the WRITE
//	    as FILE_SYNC, which is what a Linux client sends when it closes a file
//	    that fits in one WRITE; unstable+commit sends UNSTABLE then COMMIT;
//	    unstable sends UNSTABLE and nothing else (not durable). Stops early
//	    after -max-time and reports the rate of what it did.
//	nfscreate local [-n] [-size] [-max-time] -dir DIR
//	    the same job on a local folder: create, write, fsync the file, fsync
//	    the folder at the end (the machine's ceiling without NFS).
//
// URL is the libnfs URL of the export, e.g.
// nfs://127.0.0.1/export?version=3&nfsport=2049&mountport=20048 (other query
// keys are ignored). Output, one line on stdout:
//
//	files=N seconds=S rate=R
package main

import (
	"bufio"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "create":
		err = cmdCreate(os.Args[2:])
	case "local":
		err = cmdLocal(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "nfscreate:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: nfscreate create|local [flags] [URL]  (see the package comment)")
	os.Exit(2)
}

// RPC and NFSv3 numbers (RFC 5531, RFC 1813).
const (
	progNFS   = 100003
	progMount = 100005

	mountProcMnt = 1

	nfsProcLookup = 3
	nfsProcWrite  = 7
	nfsProcCreate = 8
	nfsProcMkdir  = 9
	nfsProcCommit = 21

	stableUnstable = 0
	stableFileSync = 2

	createGuarded = 1
)

// target is a parsed libnfs URL.
type target struct {
	host      string
	export    string
	nfsPort   string
	mountPort string
}

func parseURL(s string) (target, error) {
	u, err := url.Parse(s)
	if err != nil {
		return target{}, err
	}
	if u.Scheme != "nfs" || u.Host == "" {
		return target{}, fmt.Errorf("%q: want nfs://HOST/EXPORT?nfsport=P&mountport=P", s)
	}
	q := u.Query()
	t := target{host: u.Hostname(), export: u.Path, nfsPort: q.Get("nfsport"), mountPort: q.Get("mountport")}
	if t.export == "" {
		t.export = "/"
	}
	if t.nfsPort == "" {
		t.nfsPort = "2049"
	}
	if t.mountPort == "" {
		return target{}, errors.New("the URL needs mountport= (no portmapper lookups here)")
	}
	return t, nil
}

// ---- XDR ----

type enc struct{ b []byte }

func (e *enc) u32(v uint32) { e.b = binary.BigEndian.AppendUint32(e.b, v) }
func (e *enc) u64(v uint64) { e.b = binary.BigEndian.AppendUint64(e.b, v) }
func (e *enc) opaque(p []byte) {
	e.u32(uint32(len(p)))
	e.b = append(e.b, p...)
	for len(e.b)%4 != 0 {
		e.b = append(e.b, 0)
	}
}
func (e *enc) str(s string) { e.opaque([]byte(s)) }

// sattrMode is an sattr3 that sets only the mode.
func (e *enc) sattrMode(mode uint32) {
	e.u32(1) // set_mode3
	e.u32(mode)
	e.u32(0) // uid
	e.u32(0) // gid
	e.u32(0) // size
	e.u32(0) // atime: DONT_CHANGE
	e.u32(0) // mtime: DONT_CHANGE
}

type dec struct {
	b   []byte
	err error
}

func (d *dec) u32() uint32 {
	if d.err != nil || len(d.b) < 4 {
		d.fail()
		return 0
	}
	v := binary.BigEndian.Uint32(d.b)
	d.b = d.b[4:]
	return v
}

func (d *dec) skip(n int) {
	if d.err != nil || len(d.b) < n {
		d.fail()
		return
	}
	d.b = d.b[n:]
}

func (d *dec) opaque(max int) []byte {
	n := int(d.u32())
	if d.err != nil || n > max || len(d.b) < (n+3)&^3 {
		d.fail()
		return nil
	}
	p := d.b[:n]
	d.b = d.b[(n+3)&^3:]
	return p
}

func (d *dec) fail() {
	if d.err == nil {
		d.err = errors.New("short or malformed reply")
	}
}

// postOpAttr skips a post_op_attr (a bool, then an 84-byte fattr3).
func (d *dec) postOpAttr() {
	if d.u32() != 0 {
		d.skip(84)
	}
}

// wcc skips a wcc_data: pre_op_attr (bool + 24 bytes) and post_op_attr.
func (d *dec) wcc() {
	if d.u32() != 0 {
		d.skip(24)
	}
	d.postOpAttr()
}

// ---- RPC over TCP (record marking) ----

type client struct {
	conn net.Conn
	r    *bufio.Reader
	xid  uint32
	prog uint32
	vers uint32
	cred []byte
}

func dial(host, port string, prog, vers uint32) (*client, error) {
	conn, err := net.DialTimeout("tcp", net.JoinHostPort(host, port), 10*time.Second)
	if err != nil {
		return nil, err
	}
	var c enc // AUTH_SYS body
	c.u32(uint32(time.Now().Unix()))
	c.str("nfscreate")
	c.u32(uint32(os.Getuid()))
	c.u32(uint32(os.Getgid()))
	c.u32(0) // no extra groups
	var x [4]byte
	_, _ = rand.Read(x[:])
	return &client{conn: conn, r: bufio.NewReaderSize(conn, 64<<10), xid: binary.BigEndian.Uint32(x[:]),
		prog: prog, vers: vers, cred: c.b}, nil
}

func (c *client) close() { _ = c.conn.Close() }

// call sends one call and returns the procedure's result bytes.
func (c *client) call(proc uint32, args []byte) ([]byte, error) {
	c.xid++
	var m enc
	m.u32(0) // record mark, filled below
	m.u32(c.xid)
	m.u32(0) // CALL
	m.u32(2) // RPC version
	m.u32(c.prog)
	m.u32(c.vers)
	m.u32(proc)
	m.u32(1) // AUTH_SYS
	m.opaque(c.cred)
	m.u32(0) // verifier AUTH_NONE
	m.u32(0)
	m.b = append(m.b, args...)
	binary.BigEndian.PutUint32(m.b, 1<<31|uint32(len(m.b)-4))
	_ = c.conn.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := c.conn.Write(m.b); err != nil {
		return nil, err
	}
	for {
		rec, err := c.readRecord()
		if err != nil {
			return nil, err
		}
		d := dec{b: rec}
		if d.u32() != c.xid {
			continue // a stale reply
		}
		if d.u32() != 1 {
			return nil, errors.New("not an RPC reply")
		}
		if st := d.u32(); st != 0 {
			return nil, fmt.Errorf("RPC call denied (reject_stat %d)", d.u32())
		}
		d.u32()       // verifier flavor
		d.opaque(400) // verifier body
		if st := d.u32(); st != 0 || d.err != nil {
			return nil, fmt.Errorf("RPC call not accepted (accept_stat %d) for prog %d proc %d", st, c.prog, proc)
		}
		return d.b, nil
	}
}

func (c *client) readRecord() ([]byte, error) {
	var rec []byte
	for {
		var h [4]byte
		if _, err := io.ReadFull(c.r, h[:]); err != nil {
			return nil, err
		}
		n := binary.BigEndian.Uint32(h[:])
		size := int(n &^ (1 << 31))
		if len(rec)+size > 8<<20 {
			return nil, errors.New("RPC record too large")
		}
		start := len(rec)
		rec = append(rec, make([]byte, size)...)
		if _, err := io.ReadFull(c.r, rec[start:]); err != nil {
			return nil, err
		}
		if n&(1<<31) != 0 {
			return rec, nil
		}
	}
}

// ---- NFS procedures ----

type nfsErr uint32

func (e nfsErr) Error() string { return fmt.Sprintf("NFS3 status %d", uint32(e)) }

// mount returns the root handle of the export.
func mount(t target) ([]byte, error) {
	mc, err := dial(t.host, t.mountPort, progMount, 3)
	if err != nil {
		return nil, fmt.Errorf("MOUNT: %w", err)
	}
	defer mc.close()
	var a enc
	a.str(t.export)
	res, err := mc.call(mountProcMnt, a.b)
	if err != nil {
		return nil, fmt.Errorf("MOUNT %s: %w", t.export, err)
	}
	d := dec{b: res}
	if st := d.u32(); st != 0 {
		return nil, fmt.Errorf("MOUNT %s: status %d", t.export, st)
	}
	fh := d.opaque(64)
	return fh, d.err
}

// newFH returns the handle of a CREATE or MKDIR reply (or a LOOKUP of name
// when the server sent none).
func (c *client) newFH(proc uint32, dir []byte, name string, args []byte) ([]byte, error) {
	res, err := c.call(proc, args)
	if err != nil {
		return nil, err
	}
	d := dec{b: res}
	if st := d.u32(); st != 0 {
		return nil, nfsErr(st)
	}
	if d.u32() != 0 {
		fh := d.opaque(64)
		return fh, d.err
	}
	return c.lookup(dir, name)
}

func (c *client) lookup(dir []byte, name string) ([]byte, error) {
	var a enc
	a.opaque(dir)
	a.str(name)
	res, err := c.call(nfsProcLookup, a.b)
	if err != nil {
		return nil, err
	}
	d := dec{b: res}
	if st := d.u32(); st != 0 {
		return nil, fmt.Errorf("LOOKUP %s: %w", name, nfsErr(st))
	}
	fh := d.opaque(64)
	return fh, d.err
}

func (c *client) mkdir(dir []byte, name string) ([]byte, error) {
	var a enc
	a.opaque(dir)
	a.str(name)
	a.sattrMode(0o755)
	fh, err := c.newFH(nfsProcMkdir, dir, name, a.b)
	if err != nil {
		return nil, fmt.Errorf("MKDIR %s: %w", name, err)
	}
	return fh, nil
}

func (c *client) create(dir []byte, name string) ([]byte, error) {
	var a enc
	a.opaque(dir)
	a.str(name)
	a.u32(createGuarded)
	a.sattrMode(0o644)
	fh, err := c.newFH(nfsProcCreate, dir, name, a.b)
	if err != nil {
		return nil, fmt.Errorf("CREATE %s: %w", name, err)
	}
	return fh, nil
}

func (c *client) write(fh []byte, off uint64, data []byte, stable uint32) error {
	var a enc
	a.opaque(fh)
	a.u64(off)
	a.u32(uint32(len(data)))
	a.u32(stable)
	a.opaque(data)
	res, err := c.call(nfsProcWrite, a.b)
	if err != nil {
		return fmt.Errorf("WRITE: %w", err)
	}
	d := dec{b: res}
	if st := d.u32(); st != 0 {
		return fmt.Errorf("WRITE: %w", nfsErr(st))
	}
	d.wcc()
	n := d.u32()
	committed := d.u32()
	if d.err != nil {
		return fmt.Errorf("WRITE: %w", d.err)
	}
	if int(n) != len(data) {
		return fmt.Errorf("WRITE: short write %d of %d", n, len(data))
	}
	if committed < stable {
		return fmt.Errorf("WRITE: asked stable=%d, server committed only %d", stable, committed)
	}
	return nil
}

func (c *client) commit(fh []byte) error {
	var a enc
	a.opaque(fh)
	a.u64(0)
	a.u32(0) // 0: to the end of the file
	res, err := c.call(nfsProcCommit, a.b)
	if err != nil {
		return fmt.Errorf("COMMIT: %w", err)
	}
	d := dec{b: res}
	if st := d.u32(); st != 0 {
		return fmt.Errorf("COMMIT: %w", nfsErr(st))
	}
	return nil
}

// connect mounts the export and opens the NFS connection.
func connect(rawURL string) (*client, []byte, error) {
	t, err := parseURL(rawURL)
	if err != nil {
		return nil, nil, err
	}
	root, err := mount(t)
	if err != nil {
		return nil, nil, err
	}
	c, err := dial(t.host, t.nfsPort, progNFS, 3)
	if err != nil {
		return nil, nil, fmt.Errorf("NFS: %w", err)
	}
	return c, root, nil
}

// ---- commands ----

type job struct {
	n       int
	size    int
	dir     string
	maxTime time.Duration
}

func (j *job) flags(fs *flag.FlagSet) {
	fs.IntVar(&j.n, "n", 2000, "files to create")
	fs.IntVar(&j.size, "size", 4096, "bytes per file (one WRITE)")
	fs.StringVar(&j.dir, "dir", "", "directory to make and fill (required)")
	fs.DurationVar(&j.maxTime, "max-time", 60*time.Second, "stop after this long and report the rate so far")
}

func report(files int, d time.Duration) {
	fmt.Printf("files=%d seconds=%.3f rate=%.1f\n", files, d.Seconds(), float64(files)/d.Seconds())
}

func cmdCreate(args []string) error {
	fs := flag.NewFlagSet("create", flag.ExitOnError)
	var j job
	j.flags(fs)
	stable := fs.String("stable", "file", "WRITE mode: file (FILE_SYNC), unstable+commit, unstable")
	_ = fs.Parse(args)
	if fs.NArg() != 1 || j.dir == "" {
		return errors.New("create: -dir NAME and one URL needed")
	}
	mode, commit := uint32(stableFileSync), false
	switch *stable {
	case "file":
	case "unstable+commit":
		mode, commit = stableUnstable, true
	case "unstable":
		mode = stableUnstable
	default:
		return fmt.Errorf("-stable %q: want file, unstable+commit or unstable", *stable)
	}
	c, root, err := connect(fs.Arg(0))
	if err != nil {
		return err
	}
	defer c.close()
	data := make([]byte, j.size)
	_, _ = rand.Read(data)
	start := time.Now()
	dir, err := c.mkdir(root, j.dir)
	if err != nil {
		return err
	}
	done := 0
	for i := 0; i < j.n && time.Since(start) < j.maxTime; i++ {
		fh, err := c.create(dir, fmt.Sprintf("f%06d", i))
		if err != nil {
			return err
		}
		if j.size > 0 {
			if err := c.write(fh, 0, data, mode); err != nil {
				return err
			}
			if commit {
				if err := c.commit(fh); err != nil {
					return err
				}
			}
		}
		done++
	}
	report(done, time.Since(start))
	return nil
}

func cmdLocal(args []string) error {
	fs := flag.NewFlagSet("local", flag.ExitOnError)
	var j job
	j.flags(fs)
	_ = fs.Parse(args)
	if fs.NArg() != 0 || j.dir == "" {
		return errors.New("local: -dir DIR needed")
	}
	data := make([]byte, j.size)
	_, _ = rand.Read(data)
	start := time.Now()
	if err := os.Mkdir(j.dir, 0o755); err != nil {
		return err
	}
	done := 0
	for i := 0; i < j.n && time.Since(start) < j.maxTime; i++ {
		f, err := os.OpenFile(filepath.Join(j.dir, fmt.Sprintf("f%06d", i)), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return err
		}
		_, err = f.Write(data)
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		done++
	}
	d, err := os.Open(j.dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	_ = d.Close()
	if err != nil {
		return err
	}
	report(done, time.Since(start))
	return nil
}
