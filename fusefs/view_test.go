package fusefs

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/closurefs/closurefs/closure"
)

// flakySource is a closure source over a fixed graph of store paths with
// no references, that knows only the paths in known and fails with err
// while err is set.
type flakySource struct {
	storeDir string
	known    atomic.Pointer[[]string]
	err      atomic.Pointer[error]
}

func (s *flakySource) Resolve(roots []string) (*closure.Closure, error) {
	if e := s.err.Load(); e != nil {
		return nil, *e
	}
	var infos []closure.PathInfo
	for _, r := range roots {
		if !slices.Contains(*s.known.Load(), r) {
			return nil, errors.Join(errors.New(r+" is not known"), closure.ErrUnknownPath)
		}
		infos = append(infos, closure.PathInfo{Path: r})
	}
	g, err := closure.NewGraph(s.storeDir, "test", infos)
	if err != nil {
		return nil, err
	}
	return g.Resolve(roots)
}

// TestViewSourceErrors: a root the source does not know is left out while
// the others are followed, and taken in once the source knows it; any
// other error of the source leaves the view as it was, and the view
// catches up once the source works again.
func TestViewSourceErrors(t *testing.T) {
	store := t.TempDir()
	name := func(c byte, n string) string { return store + "/" + strings.Repeat(string(c), 32) + "-" + n }
	a, b, c := name('a', "a"), name('b', "b"), name('c', "c")
	for _, p := range []string{a, b, c} {
		os.Mkdir(p, 0o755)
	}
	links := t.TempDir()
	r1, r2 := filepath.Join(links, "r1"), filepath.Join(links, "r2")
	os.Symlink(a, r1)
	os.Symlink(b, r2)
	src := &flakySource{storeDir: store}
	src.known.Store(&[]string{a, b})
	v, err := NewView(ViewOptions{StoreDir: store, Source: src, Roots: []string{r1, r2}})
	if err != nil {
		t.Fatal(err)
	}
	shows := func(want ...string) {
		t.Helper()
		var got []string
		for _, p := range v.Closure().Paths {
			got = append(got, p.Path)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("view shows %v, want %v (roots %+v)", got, want, v.Roots())
		}
	}
	flip := func(link, to string) {
		os.Remove(link)
		os.Symlink(to, link)
	}
	shows(a, b)

	// r1 leads to a path the source does not know: left out, r2 stays.
	flip(r1, c)
	v.check(true, nil)
	shows(b)
	if rs := v.Roots(); rs[0].StorePath != c || !strings.Contains(rs[0].Error, "not known") {
		t.Errorf("r1's status: %+v", rs[0])
	}
	// The source learns of c: the next retry takes it in.
	src.known.Store(&[]string{a, b, c})
	v.retryAt = v.retryAt.Add(-leftOutRetry)
	v.check(true, nil)
	shows(b, c)

	// The source fails as a whole while r2 flips: the view is kept, and
	// follows once the source works again.
	broken := errors.New("database is locked")
	src.err.Store(&broken)
	flip(r2, a)
	for range 3 {
		v.check(true, nil)
	}
	shows(b, c)
	src.err.Store(nil)
	v.check(true, nil)
	shows(a, c)
}
