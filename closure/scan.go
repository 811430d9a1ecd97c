package closure

import (
	"fmt"
	"io/fs"
	"slices"
)

// Scanner is a Source that needs no database: it serialises each path as
// a NAR, hashing it, and finds its references by searching the NAR bytes for
// the hash parts of candidate store paths, as Nix does after a build.
type Scanner struct {
	// StoreDir is the store directory the paths are named in.
	StoreDir string
	// FS holds the store paths under their base names, e.g.
	// DirFS(StoreDir) or an image reader.
	FS fs.FS
	// Candidates are the store paths that may be referred to. If nil, every
	// entry of FS's root with a valid store path name is a candidate.
	Candidates []string
	// List, if set, names where Candidates came from (a store-paths
	// file) and says they are a whole closure: a root that is not among
	// them is then an error naming the list, and a path whose contents
	// hold the hash part of a store path that FS has but the list lacks
	// is reported to Warn. (Nix records a reference only to a build's
	// inputs, so such a hash may be no reference; if it is one, the list
	// is not a whole closure and that path is missing.)
	List string
	// Warn, if set, receives the warnings of a List scan.
	Warn func(format string, args ...any)
	// Options controls parallelism and progress of the hashing.
	Options HashOptions
}

// candidates returns hash part -> store path.
func (s *Scanner) candidates() (map[string]string, error) {
	if s.Candidates == nil {
		return s.storeEntries()
	}
	m := make(map[string]string)
	for _, p := range s.Candidates {
		sp, err := ParseStorePath(s.StoreDir, p)
		if err != nil {
			return nil, err
		}
		if old, dup := m[sp.Hash]; dup && old != p {
			return nil, fmt.Errorf("store paths %s and %s have the same hash part", old, p)
		}
		m[sp.Hash] = p
	}
	return m, nil
}

// storeEntries returns hash part -> store path for every entry of FS's
// root with a valid store path name.
func (s *Scanner) storeEntries() (map[string]string, error) {
	m := make(map[string]string)
	ents, err := fs.ReadDir(s.FS, ".")
	if err != nil {
		return nil, fmt.Errorf("listing the store %s: %w", s.StoreDir, err)
	}
	for _, e := range ents {
		sp, err := ParseBaseName(e.Name())
		if err != nil {
			continue // .links, lock files, temporary files
		}
		if _, dup := m[sp.Hash]; dup {
			continue // a failed build's leftover with the same hash; keep the first
		}
		m[sp.Hash] = s.StoreDir + "/" + e.Name()
	}
	return m, nil
}

// Resolve returns the closure of roots found by scanning. With no roots,
// the closure of all candidates is returned.
func (s *Scanner) Resolve(roots []string) (*Closure, error) {
	cands, err := s.candidates()
	if err != nil {
		return nil, err
	}
	if len(roots) == 0 {
		for _, p := range cands {
			roots = append(roots, p)
		}
		slices.Sort(roots)
	}
	infos := make(map[string]*PathInfo)
	frontier := slices.Clone(roots)
	slices.Sort(frontier)
	frontier = slices.Compact(frontier)
	for _, r := range frontier {
		if _, err := ParseStorePath(s.StoreDir, r); err != nil {
			return nil, err
		}
	}
	// inList holds the candidates of a whole-closure list; its scan also
	// looks for the store's other paths, to report them.
	var inList map[string]bool
	if s.List != "" && s.Candidates != nil {
		inList = make(map[string]bool, len(cands))
		for _, p := range cands {
			inList[p] = true
		}
		for _, r := range frontier {
			if !inList[r] {
				return nil, fmt.Errorf("%s is not in %s%w", r, s.List, quiet(ErrUnknownPath))
			}
		}
		all, err := s.storeEntries()
		if err != nil {
			return nil, err
		}
		for h, p := range cands {
			all[h] = p
		}
		cands = all
	}
	for len(frontier) > 0 {
		level := make([]PathInfo, len(frontier))
		errs := make([]error, len(frontier))
		parallel(len(frontier), s.Options.Jobs, func() func(i int) bool {
			h := NewNarHasher()
			sc := newRefScanner(cands)
			return func(i int) bool {
				if s.Options.Stop != nil {
					if errs[i] = s.Options.Stop(); errs[i] != nil {
						return false
					}
				}
				p := frontier[i]
				sc.reset()
				d, n, err := h.Hash(s.FS, p[len(s.StoreDir)+1:], sc)
				if err != nil {
					errs[i] = fmt.Errorf("scanning %s: %w", p, err)
					return false
				}
				level[i] = PathInfo{Path: p, NarHash: d, NarSize: n, References: sc.refs()}
				if s.Options.Progress != nil {
					s.Options.Progress(i, n)
				}
				return true
			}
		})
		if err := firstErr(errs); err != nil {
			return nil, err
		}
		var next []string
		for i := range level {
			infos[level[i].Path] = &level[i]
			if inList == nil {
				continue
			}
			refs := level[i].References[:0]
			for _, r := range level[i].References {
				if inList[r] {
					refs = append(refs, r)
				} else if s.Warn != nil {
					s.Warn("%s holds the hash of %s, which %s lacks: if that is a reference, %s is not a whole closure and the path is left out", level[i].Path, r, s.List, s.List)
				}
			}
			level[i].References = refs
		}
		for i := range level {
			for _, r := range level[i].References {
				if infos[r] == nil {
					next = append(next, r)
				}
			}
		}
		slices.Sort(next)
		frontier = slices.Compact(next)
	}
	return newClosure(s.StoreDir, roots, infos), nil
}

// refScanner is an io.Writer that records which candidate hash parts occur
// in the bytes written to it, across write boundaries.
type refScanner struct {
	cands map[string]string
	found map[string]bool
	tail  []byte // the last HashPartLen-1 bytes seen
	join  []byte // scratch for tail + head of the next write
}

func newRefScanner(cands map[string]string) *refScanner {
	return &refScanner{cands: cands, found: make(map[string]bool), join: make([]byte, 0, 2*HashPartLen)}
}

func (s *refScanner) reset() {
	clear(s.found)
	s.tail = s.tail[:0]
}

// refs returns the store paths found, sorted.
func (s *refScanner) refs() []string {
	var r []string
	for h := range s.found {
		r = append(r, s.cands[h])
	}
	slices.Sort(r)
	return r
}

func (s *refScanner) Write(p []byte) (int, error) {
	if len(s.tail) > 0 {
		s.join = append(append(s.join[:0], s.tail...), p[:min(len(p), HashPartLen-1)]...)
		s.search(s.join)
	}
	s.search(p)
	if len(p) >= HashPartLen-1 {
		s.tail = append(s.tail[:0], p[len(p)-(HashPartLen-1):]...)
	} else {
		s.tail = append(s.tail, p...)
		if over := len(s.tail) - (HashPartLen - 1); over > 0 {
			s.tail = append(s.tail[:0], s.tail[over:]...)
		}
	}
	return len(p), nil
}

// search looks up every window of HashPartLen base-32 characters in b.
func (s *refScanner) search(b []byte) {
	const n = HashPartLen
	for i := 0; i+n <= len(b); {
		j := n - 1
		for j >= 0 && nixBase32Index[b[i+j]] != 0xff {
			j--
		}
		if j >= 0 {
			i += j + 1
			continue
		}
		for {
			if _, ok := s.cands[string(b[i:i+n])]; ok {
				s.found[string(b[i:i+n])] = true
			}
			i++
			if i+n > len(b) || nixBase32Index[b[i+n-1]] == 0xff {
				break
			}
		}
		i += n
	}
}
