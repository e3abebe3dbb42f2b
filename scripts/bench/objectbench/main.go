// Command objectbench measures tsumiki's object path end to end: it starts
// a mon and three OSD processes (bin/tsumiki) on loopback, writes and reads
// objects through the client library, and prints throughput, latency
// percentiles, the OSDs' CPU seconds per operation and each OSD's peak RSS.
// `make bench` runs it; see docs/benchmarks.md for recorded figures.
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tsumiki-storage/tsumiki/storage/client"
)

func main() {
	bin := flag.String("bin", "bin/tsumiki", "tsumiki binary")
	dur := flag.Duration("duration", 10*time.Second, "per small-IO phase")
	large := flag.Int("large-objects", 64, "4 MiB objects written and read")
	debugBase := flag.Int("debug-port", 0, "if set, osd N serves /debug/pprof on 127.0.0.1:(port+N)")
	only := flag.String("only", "", "run only phases whose name contains this (the 4 MiB write always runs: it fills the objects the other phases use)")
	flag.BoolVar(&keep, "keep", false, "keep the cluster's data and logs (path printed)")
	flag.Parse()
	if err := run(*bin, *dur, *large, *debugBase, *only); err != nil {
		fmt.Fprintln(os.Stderr, "objectbench:", err)
		os.Exit(1)
	}
}

var keep bool

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

type daemon struct {
	name string
	cmd  *exec.Cmd
}

func start(bin, logPath string, args ...string) (*daemon, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &daemon{name: filepath.Base(logPath), cmd: cmd}, nil
}

func (d *daemon) stop() {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = d.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = d.cmd.Process.Kill()
	}
}

// cpuSeconds reads utime+stime of pid from /proc.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseFloat(fields[11], 64)
	st, _ := strconv.ParseFloat(fields[12], 64)
	return (ut + st) / 100 // USER_HZ
}

// statusKB reads a "Name: N kB" line of /proc/pid/status.
func statusKB(pid int, name string) int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, name+":") {
			n, _ := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
			return n
		}
	}
	return 0
}

type result struct {
	name     string
	ops      int64
	bytes    int64
	elapsed  time.Duration
	lat      []time.Duration
	cpu      float64 // OSD CPU seconds during the phase
	errs     int64
	firstErr atomic.Value
}

func (r *result) row() string {
	slices.Sort(r.lat)
	pct := func(p float64) time.Duration {
		if len(r.lat) == 0 {
			return 0
		}
		return r.lat[min(len(r.lat)-1, int(float64(len(r.lat))*p))]
	}
	secs := r.elapsed.Seconds()
	return fmt.Sprintf("| %-22s | %9.0f | %9.1f | %8.2f | %8.2f | %10.3f | %6d |",
		r.name, float64(r.ops)/secs, float64(r.bytes)/secs/1e6,
		float64(pct(0.5).Microseconds())/1000, float64(pct(0.99).Microseconds())/1000,
		r.cpu/float64(max(r.ops, 1))*1000, r.errs)
}

// phase runs fn from conc goroutines until deadline or count ops.
func phase(name string, conc int, d time.Duration, count int64, pids []int, bytesPerOp int64, fn func(rng *rand.Rand, i int64) error) *result {
	r := &result{name: name}
	cpu0 := 0.0
	for _, p := range pids {
		cpu0 += cpuSeconds(p)
	}
	var next atomic.Int64
	var mu sync.Mutex
	deadline := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			var lat []time.Duration
			for {
				i := next.Add(1) - 1
				if (count > 0 && i >= count) || (count == 0 && time.Now().After(deadline)) {
					break
				}
				t0 := time.Now()
				err := fn(rng, i)
				lat = append(lat, time.Since(t0))
				if err != nil {
					if atomic.AddInt64(&r.errs, 1) == 1 {
						r.firstErr.Store(err)
					}
				}
			}
			mu.Lock()
			r.lat = append(r.lat, lat...)
			mu.Unlock()
		}(w)
	}
	wg.Wait()
	r.elapsed = time.Since(start)
	r.ops = int64(len(r.lat))
	r.bytes = r.ops * bytesPerOp
	for _, p := range pids {
		r.cpu += cpuSeconds(p)
	}
	r.cpu -= cpu0
	if e := r.firstErr.Load(); e != nil {
		fmt.Fprintf(os.Stderr, "%s: %d errors, first: %v\n", name, r.errs, e)
	}
	return r
}

func run(bin string, dur time.Duration, large, debugBase int, only string) error {
	dir, err := os.MkdirTemp("", "tsumiki-bench-")
	if err != nil {
		return err
	}
	if keep {
		fmt.Fprintln(os.Stderr, "keeping", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	etcd := fmt.Sprintf("http://127.0.0.1:%d", freePort())
	mon, err := start(bin, filepath.Join(dir, "mon.log"), "mon", "--data", filepath.Join(dir, "mon"),
		"--listen-client", etcd, "--listen-peer", fmt.Sprintf("http://127.0.0.1:%d", freePort()))
	if err != nil {
		return err
	}
	defer mon.stop()
	var osds []*daemon
	for i := 0; i < 3; i++ {
		args := []string{"osd", "--data", filepath.Join(dir, fmt.Sprintf("osd%d", i)),
			"--host", fmt.Sprintf("h%d", i), "--listen", fmt.Sprintf("127.0.0.1:%d", freePort()),
			"--cluster-listen", fmt.Sprintf("127.0.0.1:%d", freePort()), "--etcd-endpoints", etcd}
		if debugBase > 0 {
			args = append(args, "--debug-addr", fmt.Sprintf("127.0.0.1:%d", debugBase+i))
		}
		d, err := start(bin, filepath.Join(dir, fmt.Sprintf("osd%d.log", i)), args...)
		if err != nil {
			return err
		}
		defer d.stop()
		osds = append(osds, d)
	}
	pids := []int{}
	for _, d := range osds {
		pids = append(pids, d.cmd.Process.Pid)
	}
	ctx := context.Background()
	peakAnon := make([]int64, len(pids))
	stopSampling := make(chan struct{})
	defer close(stopSampling)
	go func() { // RssAnon is not kept as a high-water mark: sample it
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-t.C:
			}
			for i, p := range pids {
				if kb := statusKB(p, "RssAnon"); kb > atomic.LoadInt64(&peakAnon[i]) {
					atomic.StoreInt64(&peakAnon[i], kb)
				}
			}
		}
	}()
	var c *client.Client
	for i := 0; ; i++ {
		c, err = client.New(ctx, client.Config{EtcdEndpoints: []string{etcd}})
		if err == nil && len(c.Map().OSDs) == 3 {
			break
		}
		if c != nil {
			c.Close()
		}
		if i > 100 {
			return fmt.Errorf("cluster did not come up: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	defer c.Close()
	create := exec.Command(bin, "pool", "create", "bench", "--size", "3", "--min-size", "2", "--pg-num", "64", "--etcd-endpoints", etcd)
	if out, err := create.CombinedOutput(); err != nil {
		return fmt.Errorf("pool create: %v: %s", err, out)
	}
	if _, err := c.Refresh(ctx); err != nil {
		return err
	}
	// Wait until every PG has a leader: one write per PG-spread object.
	for i := 0; i < 256; i++ {
		if err := c.Write(ctx, "bench", fmt.Sprintf("warm-%d", i), 0, []byte("x")); err != nil {
			return fmt.Errorf("warm-up write: %w", err)
		}
	}

	obj := func(i int64) string { return fmt.Sprintf("rbd_data.bench.%016x", i) }
	big := make([]byte, 4<<20)
	for i := range big {
		big[i] = byte(i*7 + i>>12)
	}
	var results []*result
	add := func(r *result) { results = append(results, r) }
	want := func(name string) bool {
		return only == "" || strings.Contains(name, only) || strings.Contains(name, "4 MiB write")
	}
	if want("4 MiB write (qd 8)") {
		add(phase("4 MiB write (qd 8)", 8, 0, int64(large), pids, 4<<20, func(_ *rand.Rand, i int64) error {
			return c.Write(ctx, "bench", obj(i), 0, big)
		}))
	}
	if want("4 MiB read (qd 8)") {
		add(phase("4 MiB read (qd 8)", 8, 0, int64(large), pids, 4<<20, func(_ *rand.Rand, i int64) error {
			buf := make([]byte, 4<<20)
			return c.Read(ctx, "bench", obj(i), 0, buf)
		}))
	}
	small := make([]byte, 4096)
	for i := range small {
		small[i] = byte(i)
	}
	if want("4 KiB rand write (qd 32)") {
		add(phase("4 KiB rand write (qd 32)", 32, dur, 0, pids, 4096, func(rng *rand.Rand, _ int64) error {
			return c.Write(ctx, "bench", obj(rng.Int64N(int64(large))), rng.Int64N(1024)*4096, small)
		}))
	}
	if want("4 KiB rand write (qd 1)") {
		add(phase("4 KiB rand write (qd 1)", 1, dur, 0, pids, 4096, func(rng *rand.Rand, _ int64) error {
			return c.Write(ctx, "bench", obj(rng.Int64N(int64(large))), rng.Int64N(1024)*4096, small)
		}))
	}
	if want("4 KiB rand read (qd 32)") {
		add(phase("4 KiB rand read (qd 32)", 32, dur, 0, pids, 4096, func(rng *rand.Rand, _ int64) error {
			buf := make([]byte, 4096)
			return c.Read(ctx, "bench", obj(rng.Int64N(int64(large))), rng.Int64N(1024)*4096, buf)
		}))
	}

	host, _ := os.Hostname()
	fmt.Printf("tsumiki object bench, %s, %s, 3 OSD processes on loopback, size 3, pg_num 64\n\n", time.Now().Format("2006-01-02 15:04"), host)
	fmt.Println("| phase                  |   ops/s   |   MB/s    | p50 ms   | p99 ms   | OSD CPU ms/op | errors |")
	fmt.Println("|------------------------|-----------|-----------|----------|----------|------------|--------|")
	for _, r := range results {
		fmt.Println(r.row())
	}
	fmt.Println()
	fmt.Println("| OSD  | peak RSS (VmHWM) MiB | peak anon MiB | RSS now MiB | anon now MiB | file-backed now MiB |")
	fmt.Println("|------|----------------------|---------------|-------------|--------------|---------------------|")
	for i, p := range pids {
		fmt.Printf("| osd%d | %20.1f | %13.1f | %11.1f | %12.1f | %19.1f |\n", i,
			float64(statusKB(p, "VmHWM"))/1024, float64(atomic.LoadInt64(&peakAnon[i]))/1024,
			float64(statusKB(p, "VmRSS"))/1024, float64(statusKB(p, "RssAnon"))/1024, float64(statusKB(p, "RssFile"))/1024)
	}
	fmt.Println("\nanon: the OSD's own memory (Go heap, badger's caches); file-backed: pages of badger's")
	fmt.Println("memory-mapped files (page cache, reclaimable by the kernel), which count in RSS.")
	for _, r := range results {
		if r.errs > 0 {
			return fmt.Errorf("%s had %d errors", r.name, r.errs)
		}
	}
	return nil
}
