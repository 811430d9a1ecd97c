package verify

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/closurefs/closurefs/image"
)

// pathState collects what is seen of one store path while it is hashed:
// the file bytes so far (to stop early), convention problems and mtimes.
type pathState struct {
	ctx      context.Context
	storeDir string
	limit    uint64 // registered NAR size
	seen     uint64 // sum of regular file sizes so far
	progress func(int64)
	conv     bool

	warns  map[string]*Warning   // by kind
	mtimes map[int64]*mtimeCount // by mtime
}

type mtimeCount struct {
	n     int
	first string
}

func (st *pathState) warn(kind, name, detail string) {
	if st.warns == nil {
		st.warns = make(map[string]*Warning)
	}
	w := st.warns[kind]
	if w == nil {
		w = &Warning{Path: st.storeDir + "/" + name, Kind: kind, Detail: detail}
		st.warns[kind] = w
	}
	w.Count++
}

// observe records the entry name (a path relative to the tree root) with
// info fi. It fails once the regular files seen are larger than the
// registered NAR size.
func (st *pathState) observe(name string, fi fs.FileInfo) error {
	mode := fi.Mode()
	if mode.IsRegular() && fi.Size() > 0 {
		st.seen += uint64(fi.Size())
		if st.seen > st.limit {
			return fmt.Errorf("%s: %w", name, errTooLarge)
		}
	}
	if !st.conv {
		return nil
	}
	if ino, ok := image.InodeOf(fi); ok {
		if ino.UID != 0 || ino.GID != 0 {
			st.warn("owner", name, fmt.Sprintf("owned by %d:%d, not root", ino.UID, ino.GID))
		}
		if st.mtimes == nil {
			st.mtimes = make(map[int64]*mtimeCount)
		}
		t := ino.Mtime.Unix()
		m := st.mtimes[t]
		if m == nil {
			m = &mtimeCount{first: name}
			st.mtimes[t] = m
		}
		m.n++
	}
	perm := mode.Perm()
	switch {
	case mode.IsRegular():
		if perm != 0o444 && perm != 0o555 {
			st.warn("mode", name, fmt.Sprintf("file mode %04o, not 0444 or 0555", perm))
		}
	case mode.IsDir():
		if perm != 0o555 {
			st.warn("mode", name, fmt.Sprintf("directory mode %04o, not 0555", perm))
		}
	case mode&fs.ModeDevice != 0:
		st.warn("device", name, "device file")
	case mode&(fs.ModeNamedPipe|fs.ModeSocket|fs.ModeIrregular) != 0:
		st.warn("special", name, fmt.Sprintf("special file (%v)", mode.Type()))
	}
	if mode&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0 {
		st.warn("setuid", name, fmt.Sprintf("setuid, setgid or sticky bit set (%v)", mode))
	}
	return nil
}

// conventionWarnings merges the per-path findings, adding mtime warnings
// against want (or the most common mtime).
func conventionWarnings(states []*pathState, want *int64, storeDir string) []Warning {
	var expect int64
	if want != nil {
		expect = *want
	} else {
		counts := make(map[int64]int)
		for _, st := range states {
			if st == nil {
				continue
			}
			for t, m := range st.mtimes {
				counts[t] += m.n
			}
		}
		best := -1
		for t, n := range counts {
			if n > best || (n == best && t < expect) {
				expect, best = t, n
			}
		}
	}
	var out []Warning
	for _, st := range states {
		if st == nil {
			continue
		}
		for _, w := range st.warns {
			out = append(out, *w)
		}
		var other []int64
		n := 0
		for t, m := range st.mtimes {
			if t != expect {
				other = append(other, t)
				n += m.n
			}
		}
		if n > 0 {
			sort.Slice(other, func(i, j int) bool { return other[i] < other[j] })
			first := st.mtimes[other[0]].first
			out = append(out, Warning{
				Path: storeDir + "/" + first, Kind: "mtime", Count: n,
				Detail: fmt.Sprintf("mtime %d, not the fixed mtime %d", other[0], expect),
			})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Path != out[j].Path {
			return out[i].Path < out[j].Path
		}
		return out[i].Kind < out[j].Kind
	})
	return out
}

// pathFS wraps the tree for the NAR serializer of one path: it records each
// entry's info, counts bytes read for progress, bounds the depth and stops
// on cancellation.
type pathFS struct {
	fsys image.FS
	st   *pathState
}

func (p *pathFS) Open(name string) (fs.File, error) {
	if err := p.st.ctx.Err(); err != nil {
		return nil, err
	}
	f, err := p.fsys.Open(name)
	if err != nil || p.st.progress == nil {
		return f, err
	}
	return &countingFile{File: f, progress: p.st.progress}, nil
}

func (p *pathFS) ReadDir(name string) ([]fs.DirEntry, error) {
	if err := p.st.ctx.Err(); err != nil {
		return nil, err
	}
	if strings.Count(name, "/") > maxDepth {
		return nil, fmt.Errorf("%s: directories nested more than %d deep (a loop?)", name, maxDepth)
	}
	ents, err := p.fsys.ReadDir(name)
	if err != nil {
		return nil, err
	}
	out := make([]fs.DirEntry, len(ents))
	for i, e := range ents {
		out[i] = &observedEntry{DirEntry: e, dir: name, st: p.st}
	}
	return out, nil
}

func (p *pathFS) Stat(name string) (fs.FileInfo, error) { return p.fsys.Stat(name) }

func (p *pathFS) Lstat(name string) (fs.FileInfo, error) {
	fi, err := p.fsys.Lstat(name)
	if err != nil {
		return nil, err
	}
	if err := p.st.observe(name, fi); err != nil {
		return nil, err
	}
	return fi, nil
}

func (p *pathFS) ReadLink(name string) (string, error) { return p.fsys.ReadLink(name) }

// observedEntry reports its info to the path state when the serializer
// asks for it (once per entry).
type observedEntry struct {
	fs.DirEntry
	dir string
	st  *pathState
}

func (e *observedEntry) Info() (fs.FileInfo, error) {
	fi, err := e.DirEntry.Info()
	if err != nil {
		return nil, err
	}
	if err := e.st.observe(path.Join(e.dir, e.Name()), fi); err != nil {
		return nil, err
	}
	return fi, nil
}

// countingFile reports bytes read.
type countingFile struct {
	fs.File
	progress func(int64)
}

func (f *countingFile) Read(b []byte) (int, error) {
	n, err := f.File.Read(b)
	if n > 0 {
		f.progress(int64(n))
	}
	return n, err
}
