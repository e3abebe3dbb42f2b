package deps

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// module is the import path of this module; rules name packages relative to it.
const module = "github.com/tsumiki-storage/tsumiki"

// exempt lists module packages the rules do not apply to, each with why.
var exempt = map[string]string{}

// pkg is the part of `go list -json` output the rules read.
type pkg struct {
	ImportPath   string
	Standard     bool
	Imports      []string
	TestImports  []string
	XTestImports []string
	Error        *struct{ Err string }
}

// graph maps an import path to its package.
type graph map[string]*pkg

// reach says how far a rule looks from a package.
type reach int

const (
	direct     reach = iota // the package's own import lines
	transitive              // everything the package links, through any chain
)

// rule is one statement of the dependency direction.
type rule struct {
	why     string                          // the design rule, printed on failure
	applies func(rel string) bool           // module-relative path of the importing package
	forbids func(path string, g graph) bool // full import path that must not be reached
	reach   reach                           // direct or transitive (non-test imports)
	tests   bool                            // also check the package's own _test.go import lines
}

// rel returns path relative to the module ("" for the module root, and
// ok=false for paths outside the module).
func rel(path string) (string, bool) {
	if path == module {
		return "", true
	}
	r, ok := strings.CutPrefix(path, module+"/")
	return r, ok
}

// under reports whether slash path p is dir or inside it.
func under(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }

// inModule returns a forbids func matching module packages under any of dirs.
func inModule(dirs ...string) func(string, graph) bool {
	return func(path string, _ graph) bool {
		r, ok := rel(path)
		if !ok {
			return false
		}
		for _, d := range dirs {
			if under(r, d) {
				return true
			}
		}
		return false
	}
}

// external returns a forbids func matching import paths under prefix.
func external(prefix string) func(string, graph) bool {
	return func(path string, _ graph) bool { return under(path, prefix) }
}

// notStandard matches every import outside the standard library.
func notStandard(path string, g graph) bool {
	if path == "C" {
		return false
	}
	if p, ok := g[path]; ok {
		return !p.Standard
	}
	// Not loaded: standard-library paths have no dot in their first element.
	first, _, _ := strings.Cut(path, "/")
	return strings.Contains(first, ".")
}

// isHelper reports whether a module package is test support (montest,
// storagetest, ...): ordinary code that only tests may import.
func isHelper(r string) bool {
	last := r[strings.LastIndex(r, "/")+1:]
	return strings.HasSuffix(last, "test")
}

func in(dirs ...string) func(string) bool {
	return func(r string) bool {
		for _, d := range dirs {
			if under(r, d) {
				return true
			}
		}
		return false
	}
}

func not(f func(string) bool) func(string) bool { return func(r string) bool { return !f(r) } }

func and(fs ...func(string) bool) func(string) bool {
	return func(r string) bool {
		for _, f := range fs {
			if !f(r) {
				return false
			}
		}
		return true
	}
}

// rules is the dependency direction of the project (DESIGN.md "Layers and
// the data path", STYLE.md habits 1, 2 and 14, and each package's doc).
var rules = []rule{
	{
		why:     "only storage/chunkstore (and its tests) imports badger",
		applies: not(in("storage/chunkstore")),
		forbids: external("github.com/dgraph-io/badger"),
		reach:   direct, tests: true,
	},
	{
		why:     "only storage/mon imports the etcd server (everyone else uses etcd's client)",
		applies: not(in("storage/mon")),
		forbids: external("go.etcd.io/etcd/server"),
		reach:   direct, tests: true,
	},
	{
		why:     "storage/placement is pure: standard library only",
		applies: in("storage/placement"),
		forbids: notStandard,
		reach:   transitive,
	},
	{
		why:     "storage/wire is standard library only",
		applies: in("storage/wire"),
		forbids: notStandard,
		reach:   transitive,
	},
	{
		why:     "storage/client never links daemon internals (storage/osd, storage/chunkstore)",
		applies: in("storage/client"),
		forbids: inModule("storage/osd", "storage/chunkstore"),
		reach:   transitive,
	},
	{
		why:     "storage/chunkstore keeps raft bytes opaque: no go.etcd.io/raft",
		applies: in("storage/chunkstore"),
		forbids: external("go.etcd.io/raft"),
		reach:   transitive, tests: true,
	},
	{
		why:     "storage/... never imports cmd/... (cmd wires storage, not the other way)",
		applies: in("storage"),
		forbids: inModule("cmd"),
		reach:   transitive, tests: true,
	},
	{
		why:     "imports point down the data path: storage/... never imports blockdev/, nfsgw/ or cache/",
		applies: in("storage"),
		forbids: inModule("blockdev", "nfsgw", "cache"),
		reach:   transitive, tests: true,
	},
	{
		why:     "only cmd/tsumiki and test helpers link storage/mon (package mon's doc)",
		applies: and(not(in("cmd", "storage/mon")), not(isHelper)),
		forbids: inModule("storage/mon"),
		reach:   transitive,
	},
	{
		why:     "the block layer and the NFS gateway reach storage through storage/client only",
		applies: and(in("blockdev", "nfsgw"), not(isHelper)),
		forbids: inModule("storage/osd", "storage/chunkstore", "storage/mon", "cache"),
		reach:   transitive,
	},
	{
		why:     "blockdev/stripe is pure: standard library only",
		applies: in("blockdev/stripe"),
		forbids: notStandard,
		reach:   transitive,
	},
	{
		why:     "blockdev/image reaches storage through storage/client and storage/clustermap only (package image's doc)",
		applies: and(in("blockdev/image"), not(isHelper)),
		forbids: func(path string, g graph) bool {
			return inModule("storage")(path, g) && !inModule("storage/client", "storage/clustermap")(path, g)
		},
		reach: direct,
	},
	{
		why:     "imports point down the data path: blockdev/image and blockdev/stripe never import the gateways above them",
		applies: in("blockdev/image", "blockdev/stripe"),
		forbids: inModule("blockdev/nbd", "blockdev/attach", "nfsgw", "cmd"),
		reach:   transitive, tests: true,
	},
	{
		why:     "imports point down the data path: blockdev/... never imports nfsgw/...",
		applies: in("blockdev"),
		forbids: inModule("nfsgw"),
		reach:   transitive, tests: true,
	},
	{
		why:     "imports point down the data path: cache/ sits under storage/osd and over storage/chunkstore",
		applies: and(in("cache"), not(isHelper)),
		forbids: inModule("storage/osd", "storage/client", "storage/mon", "blockdev", "nfsgw"),
		reach:   transitive,
	},
	{
		why:     "internal/acklog and internal/writelog are test tools: tests (and acklog's own guest command) import them",
		applies: not(in("internal/acklog")),
		forbids: inModule("internal/acklog", "internal/writelog"),
		reach:   transitive,
	},
	{
		why:     "test helpers (…test packages) are imported by tests only",
		applies: not(isHelper),
		forbids: func(path string, _ graph) bool { r, ok := rel(path); return ok && isHelper(r) },
		reach:   transitive,
	},
}

// violation is one broken rule: chain runs from the importing package to
// the forbidden import.
type violation struct {
	why   string
	chain []string
	test  bool // found in a _test.go import line
}

func (v violation) String() string {
	short := make([]string, len(v.chain))
	for i, p := range v.chain {
		if r, ok := rel(p); ok {
			p = r
			if p == "" {
				p = module
			}
		}
		short[i] = p
	}
	where := ""
	if v.test {
		where = " (in its tests)"
	}
	return v.why + ":\n\t" + strings.Join(short, " → ") + where
}

// check applies every rule to every module package in g.
func check(g graph, rules []rule) []violation {
	var roots []string
	for path := range g {
		if r, ok := rel(path); ok {
			if _, skip := exempt[r]; !skip {
				roots = append(roots, path)
			}
		}
	}
	slices.Sort(roots)
	var out []violation
	for _, root := range roots {
		r, _ := rel(root)
		p := g[root]
		for _, ru := range rules {
			if !ru.applies(r) {
				continue
			}
			switch ru.reach {
			case direct:
				for _, imp := range p.Imports {
					if imp != root && ru.forbids(imp, g) {
						out = append(out, violation{why: ru.why, chain: []string{root, imp}})
					}
				}
			case transitive:
				for _, chain := range chains(g, root, ru.forbids) {
					out = append(out, violation{why: ru.why, chain: chain})
				}
			}
			if ru.tests {
				for _, imp := range slices.Concat(p.TestImports, p.XTestImports) {
					if imp != root && ru.forbids(imp, g) {
						out = append(out, violation{why: ru.why, chain: []string{root, imp}, test: true})
					}
				}
			}
		}
	}
	return out
}

// chains walks the non-test imports from root breadth first and returns,
// for every forbidden package reached, the shortest chain to it. It does not
// walk past a forbidden package, so only the entry points are reported.
func chains(g graph, root string, forbids func(string, graph) bool) [][]string {
	prev := map[string]string{root: ""}
	queue := []string{root}
	var hits []string
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		p, ok := g[cur]
		if !ok {
			continue
		}
		for _, imp := range p.Imports {
			if _, seen := prev[imp]; seen || imp == "C" {
				continue
			}
			prev[imp] = cur
			if forbids(imp, g) {
				hits = append(hits, imp)
				continue
			}
			queue = append(queue, imp)
		}
	}
	var out [][]string
	for _, h := range hits {
		var chain []string
		for p := h; p != ""; p = prev[p] {
			chain = append(chain, p)
		}
		slices.Reverse(chain)
		out = append(out, chain)
	}
	return out
}

// goCmd returns the go command to run. `go test` puts the Go root it was
// run from first on the test's PATH, so this is the same toolchain
// (runtime.GOROOT is deprecated for this purpose).
func goCmd(t *testing.T) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("no go command on PATH: %v", err)
	}
	return gobin
}

// load runs `go list -deps` over the whole module.
func load(t *testing.T) graph {
	t.Helper()
	cmd := exec.Command(goCmd(t), "list", "-e", "-deps",
		"-json=ImportPath,Standard,Imports,TestImports,XTestImports,Error", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	g := graph{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		if p.Error != nil {
			// A package that does not load (mid-edit, missing module) still
			// lists the imports it could read; its build fails elsewhere.
			t.Logf("go list: %s: %s", p.ImportPath, p.Error.Err)
		}
		g[p.ImportPath] = &p
	}
	return g
}

// TestImportDirection fails when any package imports against the
// direction of the data path. Each failure names the import chain.
func TestImportDirection(t *testing.T) {
	g := load(t)

	// Guard against a vacuous pass (an empty or misread listing).
	cs, ok := g[module+"/storage/chunkstore"]
	if !ok {
		t.Fatalf("go list did not report %s/storage/chunkstore; the rules would check nothing", module)
	}
	if !slices.ContainsFunc(cs.Imports, func(p string) bool { return under(p, "github.com/dgraph-io/badger/v4") }) {
		t.Fatalf("storage/chunkstore does not import badger according to go list: listing misread?")
	}

	for _, v := range check(g, rules) {
		t.Error(v)
	}
}

// TestCheck runs the rules over small made-up graphs, so that a rule that
// can never fire does not pass unnoticed.
func TestCheck(t *testing.T) {
	m := func(r string) string { return module + "/" + r }
	std := func(paths ...string) graph {
		g := graph{}
		for _, p := range paths {
			g[p] = &pkg{ImportPath: p, Standard: true}
		}
		return g
	}
	add := func(g graph, path string, imports ...string) graph {
		g[path] = &pkg{ImportPath: path, Imports: imports}
		return g
	}
	tests := []struct {
		name string
		g    graph
		want []string // violations, as printed
	}{
		{
			name: "clean",
			g: func() graph {
				g := std("fmt", "errors")
				add(g, m("storage/placement"), "fmt")
				add(g, m("storage/chunkstore"), "github.com/dgraph-io/badger/v4", "errors")
				add(g, "github.com/dgraph-io/badger/v4", "fmt")
				add(g, m("storage/osd"), m("storage/chunkstore"), "go.etcd.io/raft/v3")
				add(g, "go.etcd.io/raft/v3", "errors")
				add(g, m("cmd/tsumiki"), m("storage/osd"), m("storage/mon"))
				add(g, m("storage/mon"), "go.etcd.io/etcd/server/v3/embed")
				add(g, "go.etcd.io/etcd/server/v3/embed")
				return g
			}(),
		},
		{
			name: "client reaches osd through a middle package",
			g: func() graph {
				g := std("fmt")
				add(g, m("storage/client"), m("storage/clustermap"), "fmt")
				add(g, m("storage/clustermap"), m("storage/osd"))
				add(g, m("storage/osd"), "fmt")
				return g
			}(),
			want: []string{"storage/client never links daemon internals (storage/osd, storage/chunkstore):\n\tstorage/client → storage/clustermap → storage/osd"},
		},
		{
			name: "placement imports a third-party package",
			g: func() graph {
				g := std("fmt")
				add(g, m("storage/placement"), "fmt", "example.com/x")
				add(g, "example.com/x", "example.com/y")
				add(g, "example.com/y")
				return g
			}(),
			want: []string{"storage/placement is pure: standard library only:\n\tstorage/placement → example.com/x"},
		},
		{
			name: "badger outside the chunk store, in a test",
			g: func() graph {
				g := std("testing")
				add(g, m("storage/osd"))
				g[m("storage/osd")].XTestImports = []string{"github.com/dgraph-io/badger/v4/options"}
				return g
			}(),
			want: []string{"only storage/chunkstore (and its tests) imports badger:\n\tstorage/osd → github.com/dgraph-io/badger/v4/options (in its tests)"},
		},
		{
			name: "cmd may link the etcd server through mon, not import it",
			g: func() graph {
				g := graph{}
				add(g, m("cmd/tsumiki"), m("storage/mon"), "go.etcd.io/etcd/server/v3/embed")
				add(g, m("storage/mon"), "go.etcd.io/etcd/server/v3/embed")
				add(g, "go.etcd.io/etcd/server/v3/embed")
				return g
			}(),
			want: []string{"only storage/mon imports the etcd server (everyone else uses etcd's client):\n\tcmd/tsumiki → go.etcd.io/etcd/server/v3/embed"},
		},
		{
			name: "storage imports the block layer",
			g: func() graph {
				g := graph{}
				add(g, m("storage/osd"), m("cache"))
				add(g, m("cache"))
				return g
			}(),
			want: []string{"imports point down the data path: storage/... never imports blockdev/, nfsgw/ or cache/:\n\tstorage/osd → cache"},
		},
		{
			name: "stripe imports a module package, image imports the wire protocol",
			g: func() graph {
				g := std("fmt")
				add(g, m("blockdev/stripe"), "fmt", m("storage/placement"))
				add(g, m("storage/placement"), "fmt")
				add(g, m("blockdev/image"), m("blockdev/stripe"), m("storage/client"), m("storage/wire"))
				add(g, m("storage/client"), m("storage/wire"))
				add(g, m("storage/wire"), "fmt")
				return g
			}(),
			want: []string{
				"blockdev/image reaches storage through storage/client and storage/clustermap only (package image's doc):\n\tblockdev/image → storage/wire",
				"blockdev/stripe is pure: standard library only:\n\tblockdev/stripe → storage/placement",
			},
		},
		{
			name: "the image layer imports the NBD server",
			g: func() graph {
				g := graph{}
				add(g, m("blockdev/image"), m("blockdev/nbd"))
				add(g, m("blockdev/nbd"))
				return g
			}(),
			want: []string{"imports point down the data path: blockdev/image and blockdev/stripe never import the gateways above them:\n\tblockdev/image → blockdev/nbd"},
		},
		{
			name: "production code imports a test helper",
			g: func() graph {
				g := graph{}
				add(g, m("storage/clustermap"), m("storage/mon/montest"))
				add(g, m("storage/mon/montest"), m("storage/mon"))
				add(g, m("storage/mon"))
				return g
			}(),
			want: []string{
				"only cmd/tsumiki and test helpers link storage/mon (package mon's doc):\n\tstorage/clustermap → storage/mon/montest",
				"test helpers (…test packages) are imported by tests only:\n\tstorage/clustermap → storage/mon/montest",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, v := range check(tt.g, rules) {
				got = append(got, v.String())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got violations\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}
