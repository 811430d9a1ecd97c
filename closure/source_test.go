package closure

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fakeStore makes a store directory with three store paths: top refers to
// mid (in a file) and to itself, mid refers to leaf through a symlink
// target, leaf is a single file; junk is a path nothing refers to.
func fakeStore(t *testing.T) (store, top, mid, leaf, junk string) {
	t.Helper()
	store = filepath.Join(t.TempDir(), "store")
	name := func(h byte, n string) string { return store + "/" + strings.Repeat(string(h), 32) + "-" + n }
	top, mid, leaf, junk = name('1', "top"), name('2', "mid"), name('3', "leaf"), name('4', "junk")
	os.MkdirAll(top+"/bin", 0o755)
	os.WriteFile(top+"/bin/run", []byte("#!/bin/sh\nexec "+mid+"/bin/x\n# "+top+"\n"), 0o555)
	os.MkdirAll(mid+"/bin", 0o755)
	os.Symlink(leaf, mid+"/bin/x")
	os.WriteFile(leaf, []byte("leaf, no references "+strings.Repeat("3", 31)+"\n"), 0o444)
	os.WriteFile(junk, []byte(top), 0o444)
	os.MkdirAll(store+"/.links", 0o755)
	os.WriteFile(store+"/lockfile.lock", nil, 0o644)
	return
}

func TestScannerOnFakeStore(t *testing.T) {
	store, top, mid, leaf, junk := fakeStore(t)
	for _, jobs := range []int{1, 3} {
		s := &Scanner{StoreDir: store, FS: DirFS(store), Options: HashOptions{Jobs: jobs}}
		c, err := s.Resolve([]string{top})
		if err != nil {
			t.Fatal(err)
		}
		if got := []string{c.Paths[0].Path, c.Paths[1].Path, c.Paths[2].Path}; len(c.Paths) != 3 || !slices.Equal(got, []string{top, mid, leaf}) {
			t.Fatalf("jobs %d: closure %+v", jobs, c.Paths)
		}
		want := map[string][]string{top: {top, mid}, mid: {leaf}, leaf: nil}
		for _, p := range c.Paths {
			if !slices.Equal(p.References, want[p.Path]) {
				t.Errorf("jobs %d: %s refers to %v, want %v", jobs, p.Path, p.References, want[p.Path])
			}
			h, n, err := HashNAR(DirFS(store), filepath.Base(p.Path))
			if err != nil || h != p.NarHash || n != p.NarSize {
				t.Errorf("%s: hash/size differ from HashNAR", p.Path)
			}
		}
		chain, err := Why(c, top, leaf)
		if err != nil || !slices.Equal(chain, []string{top, mid, leaf}) {
			t.Errorf("Why = %v, %v", chain, err)
		}
		if _, err := Why(c, leaf, top); err == nil {
			t.Errorf("Why(leaf, top) found a chain")
		}
	}
	// Restricted candidates: junk's reference to top is found only when top
	// is a candidate.
	s := &Scanner{StoreDir: store, FS: DirFS(store), Candidates: []string{junk}}
	c, err := s.Resolve([]string{junk})
	if err != nil || len(c.Paths) != 1 || c.Paths[0].References != nil {
		t.Errorf("restricted scan: %+v, %v", c, err)
	}
	// All candidates with no roots: the whole store.
	s = &Scanner{StoreDir: store, FS: DirFS(store)}
	if c, err := s.Resolve(nil); err != nil || len(c.Paths) != 4 {
		t.Errorf("scan of the whole store: %v paths, %v", c, err)
	}
	// A missing root is an error naming it.
	if _, err := s.Resolve([]string{store + "/" + strings.Repeat("5", 32) + "-gone"}); err == nil || !strings.Contains(err.Error(), "gone") {
		t.Errorf("missing root: %v", err)
	}
}

func TestFollowLinksToStorePath(t *testing.T) {
	store, top, mid, leaf, _ := fakeStore(t)
	dir := t.TempDir()
	link := func(target, name string) string {
		p := filepath.Join(dir, name)
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	result := link(top, "result")
	profile := link("result", "profile")         // relative chain
	system := link(profile+"/bin", "system")     // into a store path
	viaMid := link(mid+"/bin/x", "via-mid-link") // through a store path's symlink: stops at mid
	link("loop-b", "loop-a")
	link("loop-a", "loop-b")
	realDir := filepath.Join(dir, "real")
	os.MkdirAll(realDir, 0o755)
	for _, tc := range []struct{ in, want string }{
		{top, top},
		{top + "/bin/run", top},
		{mid + "/bin/x", mid},
		{leaf, leaf},
		{result, top},
		{profile, top},
		{profile + "/bin/run", top},
		{system, top},
		{viaMid, mid},
		{filepath.Join(dir, "loop-a"), ""},
		{realDir, ""},
		{filepath.Join(dir, "missing"), ""},
	} {
		got, err := FollowLinksToStorePath(store, tc.in)
		if got != tc.want || (err == nil) != (tc.want != "") {
			t.Errorf("FollowLinksToStorePath(%s) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// TestScannerList checks a whole-closure list (a store-paths file): its
// roots must be in it, and so must what its paths refer to.
func TestScannerList(t *testing.T) {
	store, top, mid, leaf, junk := fakeStore(t)
	for _, tc := range []struct {
		name       string
		list       []string
		roots      []string
		paths, err string
	}{
		{"whole", []string{top, mid, leaf}, []string{mid}, "mid leaf", ""},
		{"no roots", []string{top, mid, leaf}, nil, "top mid leaf", ""},
		{"root missing", []string{mid, leaf}, []string{top}, "", top + " is not in sp"},
		// A hash of a store path the list lacks is warned about and left
		// out: top mentions mid, junk mentions top.
		{"reference missing", []string{top, leaf}, []string{top}, "top", ""},
		{"reference in the store", []string{junk}, nil, "junk", ""},
	} {
		var warnings []string
		warn := func(format string, args ...any) { warnings = append(warnings, fmt.Sprintf(format, args...)) }
		s := &Scanner{StoreDir: store, FS: DirFS(store), Candidates: tc.list, List: "sp", Warn: warn}
		c, err := s.Resolve(tc.roots)
		if want := map[string]string{"reference missing": mid, "reference in the store": top}[tc.name]; want != "" {
			if len(warnings) != 1 || !strings.Contains(warnings[0], "holds the hash of "+want+", which sp lacks") {
				t.Errorf("%s: warnings %q", tc.name, warnings)
			}
		} else if len(warnings) != 0 {
			t.Errorf("%s: warnings %q", tc.name, warnings)
		}
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		var got []string
		for _, p := range c.Paths {
			got = append(got, p.Path[strings.LastIndexByte(p.Path, '-')+1:])
		}
		slices.Sort(got)
		want := strings.Fields(tc.paths)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s: closure %v, want %v", tc.name, got, want)
		}
	}
}

// TestClosureSizes checks each path's closure size on a graph with a
// cycle through a self-reference and a shared dependency.
func TestClosureSizes(t *testing.T) {
	c := &Closure{Paths: []PathInfo{
		{Path: "a", NarSize: 1, References: []string{"a", "b", "c"}},
		{Path: "b", NarSize: 10, References: []string{"d"}},
		{Path: "c", NarSize: 100, References: []string{"d", "outside"}},
		{Path: "d", NarSize: 1000},
	}}
	want := map[string]uint64{"a": 1111, "b": 1010, "c": 1100, "d": 1000}
	if got := c.ClosureSizes(); !maps.Equal(got, want) {
		t.Errorf("ClosureSizes = %v, want %v", got, want)
	}
}
