package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// netLab is a set of network namespaces made for one test, as TESTING.md
// describes: a switch namespace holding two bridges, the public network
// (10.77.1.0/24) and the cluster network (10.77.2.0/24), and one namespace
// per host with a veth on each. Cutting a host's veth takes the host off
// that network, both ways, while its processes keep running. The
// namespaces, and with them every veth and bridge, are deleted at cleanup.
// The addresses exist only inside these namespaces.
type netLab struct {
	t     testing.TB
	tag   string // prefix of every namespace name, unique per lab
	hosts map[string]int
}

// The two networks and the names of the bridge and veth ends on them.
var labNets = []struct{ name, subnet string }{{"pub", "10.77.1"}, {"cl", "10.77.2"}}

var labSeq atomic.Int32

// newNetLab makes the namespaces for hosts (host i gets .10+i on both
// networks). It skips the test, saying why, where namespaces cannot be
// made (not root, no iproute2, a sandbox without CAP_NET_ADMIN).
func newNetLab(t testing.TB, hosts ...string) *netLab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root: run the test as root (make e2e does on the CI machine)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("no `ip` (iproute2): apt-get install iproute2")
	}
	l := &netLab{t: t, tag: fmt.Sprintf("tsk%d-%d", os.Getpid()%100000, labSeq.Add(1)), hosts: map[string]int{}}
	sw := l.tag + "-sw"
	if out, err := exec.Command("ip", "netns", "add", sw).CombinedOutput(); err != nil {
		t.Skipf("cannot make a network namespace here (%v: %s): this test needs CAP_NET_ADMIN", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(l.remove)
	for _, n := range labNets {
		l.ip(sw, "link", "add", n.name, "type", "bridge")
		l.ip(sw, "addr", "add", n.subnet+".1/24", "dev", n.name)
		l.ip(sw, "link", "set", n.name, "up")
	}
	for i, h := range hosts {
		ns := l.ns(h)
		if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
			t.Fatalf("ip netns add %s: %v: %s", ns, err, out)
		}
		l.hosts[h] = i
		l.ip(ns, "link", "set", "lo", "up")
		for _, n := range labNets {
			peer := fmt.Sprintf("%s-%d", n.name, i)
			l.ip("", "link", "add", n.name, "netns", ns, "type", "veth", "peer", "name", peer, "netns", sw)
			l.ip(sw, "link", "set", peer, "master", n.name)
			l.ip(sw, "link", "set", peer, "up")
			l.ip(ns, "addr", "add", fmt.Sprintf("%s.%d/24", n.subnet, 10+i), "dev", n.name)
			l.ip(ns, "link", "set", n.name, "up")
		}
	}
	return l
}

// ns is the namespace name of host h.
func (l *netLab) ns(h string) string { return l.tag + "-" + h }

// addr is host h's address on network net ("pub" or "cl") with port.
func (l *netLab) addr(h, net string, port int) string {
	i, ok := l.hosts[h]
	if !ok {
		l.t.Fatalf("netlab: no host %q", h)
	}
	for _, n := range labNets {
		if n.name == net {
			return fmt.Sprintf("%s.%d:%d", n.subnet, 10+i, port)
		}
	}
	l.t.Fatalf("netlab: no network %q", net)
	return ""
}

// cut takes host h off network net; heal puts it back.
func (l *netLab) cut(h, net string)  { l.ip(l.ns(h), "link", "set", net, "down") }
func (l *netLab) heal(h, net string) { l.ip(l.ns(h), "link", "set", net, "up") }

// ip runs `ip` in namespace ns ("" = this one) and fails the test if it fails.
func (l *netLab) ip(ns string, args ...string) {
	l.t.Helper()
	if ns != "" {
		args = append([]string{"-n", ns}, args...)
	}
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		l.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// remove deletes the lab's namespaces (their veths and bridges go with
// them). It runs after the cluster's cleanup, which killed the processes
// in them (cleanups run last-registered first, and the lab is made first).
func (l *netLab) remove() {
	for h := range l.hosts {
		_ = exec.Command("ip", "netns", "del", l.ns(h)).Run()
	}
	_ = exec.Command("ip", "netns", "del", l.tag+"-sw").Run()
}

// newLabCluster is newCluster with the mon, the CLI and each OSD on a host
// of their own in lab: the mon and CLI on the public network, each OSD
// serving clients on the public one and replicating on the cluster one.
func newLabCluster(t testing.TB, osds int) (*cluster, *netLab) {
	t.Helper()
	hosts := []string{"mon", "cli"}
	for i := 0; i < osds; i++ {
		hosts = append(hosts, fmt.Sprintf("h%d", i))
	}
	l := newNetLab(t, hosts...)
	c := newCluster(t, osds)
	c.ns = l.ns("cli")
	c.etcd = "http://" + l.addr("mon", "pub", 2379)
	c.mon.ns = l.ns("mon")
	c.mon.args = []string{"mon", "--data", filepath.Join(c.dir, "mon"), "--listen-client", c.etcd,
		"--listen-peer", "http://" + l.addr("mon", "pub", 2380)}
	for i, o := range c.osds {
		h := fmt.Sprintf("h%d", i)
		o.ns = l.ns(h)
		o.args = append([]string{"osd", "--data", filepath.Join(c.dir, fmt.Sprintf("osd%d", i)), "--host", h,
			"--listen", l.addr(h, "pub", 6800), "--cluster-listen", l.addr(h, "cl", 6900),
			"--etcd-endpoints", c.etcd}, strings.Fields(os.Getenv("TSUMIKI_E2E_OSD_FLAGS"))...)
	}
	return c, l
}
