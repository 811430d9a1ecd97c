package closure

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
)

// Source resolves closures: from the Nix database (DB), from a file that
// describes one (Graph: registration, closureInfo, exportReferencesGraph) or
// by scanning the store (Scanner).
type Source interface {
	// Resolve returns the closure of roots, full store paths in the store
	// directory the source describes. Sources that describe a closure of
	// their own (files) treat an empty roots as all the paths they describe.
	Resolve(roots []string) (*Closure, error)
}

// ErrUnknownPath is wrapped by a Source's error for a root it does not
// describe (a path the database does not hold, one outside a file): an
// error of that root, not of the source.
var ErrUnknownPath = errors.New("unknown store path")

// newClosure builds a sorted Closure from a map of infos.
func newClosure(storeDir string, roots []string, infos map[string]*PathInfo) *Closure {
	c := &Closure{StoreDir: storeDir, Roots: slices.Clone(roots), Paths: make([]PathInfo, 0, len(infos))}
	slices.Sort(c.Roots)
	c.Roots = slices.Compact(c.Roots)
	for _, p := range infos {
		pi := *p
		pi.References = slices.Clone(pi.References)
		slices.Sort(pi.References)
		pi.References = slices.Compact(pi.References)
		c.Paths = append(c.Paths, pi)
	}
	slices.SortFunc(c.Paths, func(a, b PathInfo) int { return strings.Compare(a.Path, b.Path) })
	return c
}

// Lookup returns the info of p in c, or nil.
func (c *Closure) Lookup(p string) *PathInfo {
	i, ok := slices.BinarySearchFunc(c.Paths, p, func(pi PathInfo, p string) int { return strings.Compare(pi.Path, p) })
	if !ok {
		return nil
	}
	return &c.Paths[i]
}

// topRoots returns the paths of infos that no other path refers to: the
// roots of a closure read from a file.
func topRoots(infos map[string]*PathInfo) []string {
	referred := make(map[string]bool)
	for _, p := range infos {
		for _, r := range p.References {
			if r != p.Path {
				referred[r] = true
			}
		}
	}
	var roots []string
	for p := range infos {
		if !referred[p] {
			roots = append(roots, p)
		}
	}
	slices.Sort(roots)
	return roots
}

// Graph is a Source over path infos already in memory, such as a parsed
// registration or exportReferencesGraph file.
type Graph struct {
	// StoreDir is the store directory of the paths.
	StoreDir string
	// Name names the input in errors, e.g. the file it was read from.
	Name string
	// Infos holds every path the input describes, by path.
	Infos map[string]*PathInfo
	// Hasher, if not nil, computes NAR hashes and sizes of the resolved
	// paths, for inputs that lack them (the legacy exportReferencesGraph
	// format).
	Hasher *Hasher
}

// NewGraph returns a Graph over infos, which must be closed under
// references.
func NewGraph(storeDir, name string, infos []PathInfo) (*Graph, error) {
	g := &Graph{StoreDir: storeDir, Name: name, Infos: make(map[string]*PathInfo, len(infos))}
	for i := range infos {
		if _, dup := g.Infos[infos[i].Path]; dup {
			return nil, fmt.Errorf("%s: duplicate path %s", name, infos[i].Path)
		}
		g.Infos[infos[i].Path] = &infos[i]
	}
	for _, p := range infos {
		for _, r := range p.References {
			if g.Infos[r] == nil {
				return nil, fmt.Errorf("%s: %s refers to %s, which is not in it", name, p.Path, r)
			}
		}
	}
	return g, nil
}

// Resolve returns the closure of roots within the graph, or the whole graph
// if roots is empty.
func (g *Graph) Resolve(roots []string) (*Closure, error) {
	infos := g.Infos
	if len(roots) == 0 {
		roots = topRoots(infos)
	} else {
		infos = make(map[string]*PathInfo)
		queue := slices.Clone(roots)
		for _, r := range roots {
			if g.Infos[r] == nil {
				return nil, fmt.Errorf("%s: %s is not in it%w", g.Name, r, quiet(ErrUnknownPath))
			}
		}
		for len(queue) > 0 {
			p := queue[0]
			queue = queue[1:]
			if infos[p] != nil {
				continue
			}
			infos[p] = g.Infos[p]
			queue = append(queue, infos[p].References...)
		}
	}
	c := newClosure(g.StoreDir, roots, infos)
	if g.Hasher != nil {
		if err := g.Hasher.fill(c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Hasher computes NAR hashes of store paths read through FS.
type Hasher struct {
	// FS holds the store paths under their base names, e.g.
	// DirFS(storeDir) or an image reader.
	FS fs.FS
	// Options controls the parallelism and progress.
	Options HashOptions
}

// Why returns one shortest reference chain in c from the store path from
// to the store path to, both ends included.
func Why(c *Closure, from, to string) ([]string, error) {
	if c.Lookup(from) == nil {
		return nil, fmt.Errorf("%s is not in the closure", from)
	}
	if c.Lookup(to) == nil {
		return nil, fmt.Errorf("%s is not in the closure of %s", to, from)
	}
	prev := map[string]string{from: ""}
	queue := []string{from}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if p == to {
			var chain []string
			for q := to; q != ""; q = prev[q] {
				chain = append(chain, q)
			}
			slices.Reverse(chain)
			return chain, nil
		}
		info := c.Lookup(p)
		if info == nil {
			continue
		}
		for _, r := range info.References {
			if _, seen := prev[r]; !seen {
				prev[r] = p
				queue = append(queue, r)
			}
		}
	}
	return nil, fmt.Errorf("%s does not depend on %s", from, to)
}

// baseNames returns the base names of c's paths, in c's order.
func baseNames(c *Closure) []string {
	names := make([]string, len(c.Paths))
	for i, p := range c.Paths {
		names[i] = path.Base(p.Path)
	}
	return names
}

// fill sets the NAR hash and size of every path of c.
func (h *Hasher) fill(c *Closure) error {
	res, err := HashPaths(h.FS, baseNames(c), h.Options)
	if err != nil {
		return err
	}
	for i := range res {
		c.Paths[i].NarHash, c.Paths[i].NarSize = res[i].Hash, res[i].Size
	}
	return nil
}

// ClosureSizes returns, for each path of c, the sum of the NAR sizes of
// its closure within c (the closureSize of Nix's path info JSON).
// References to paths outside c are not followed.
func (c *Closure) ClosureSizes() map[string]uint64 {
	index := make(map[string]int, len(c.Paths))
	for i, p := range c.Paths {
		index[p.Path] = i
	}
	sizes := make(map[string]uint64, len(c.Paths))
	seen := make([]int, len(c.Paths)) // the walk (i+1) that last saw a path
	var stack []int
	for i := range c.Paths {
		stack = append(stack[:0], i)
		seen[i] = i + 1
		var sum uint64
		for len(stack) > 0 {
			j := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			sum += c.Paths[j].NarSize
			for _, r := range c.Paths[j].References {
				if k, ok := index[r]; ok && seen[k] != i+1 {
					seen[k] = i + 1
					stack = append(stack, k)
				}
			}
		}
		sizes[c.Paths[i].Path] = sum
	}
	return sizes
}

// quiet wraps err so that it is matched by errors.Is but adds nothing to
// the message of the error that wraps it.
func quiet(err error) error { return quietErr{err} }

type quietErr struct{ err error }

func (quietErr) Error() string   { return "" }
func (q quietErr) Unwrap() error { return q.err }
