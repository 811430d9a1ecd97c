package treetest

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// recorder is a testing.TB that records failures instead of failing.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}
func (r *recorder) Fatal(args ...any) {
	r.errs = append(r.errs, fmt.Sprint(args...))
	runtime.Goexit()
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
	runtime.Goexit()
}

func compare(t *testing.T, got, want string, o Options) []string {
	r := &recorder{TB: t}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		Compare(r, got, want, o)
	}()
	wg.Wait()
	return r.errs
}

// tree writes a small tree under a fresh directory.
func tree(t *testing.T) string {
	d := t.TempDir()
	for _, f := range []struct{ name, data string }{{"a/f", "hello"}, {"a/g", "x"}, {"top", ""}} {
		os.MkdirAll(filepath.Join(d, filepath.Dir(f.name)), 0o755)
		if err := os.WriteFile(filepath.Join(d, f.name), []byte(f.data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Symlink("a/f", filepath.Join(d, "l"))
	return d
}

func TestCompare(t *testing.T) {
	for _, c := range []struct {
		name   string
		change func(d string)
		o      Options
		want   string // substring of the first failure; "" for none
	}{
		{"same", func(string) {}, Options{}, ""},
		{"content", func(d string) { os.WriteFile(filepath.Join(d, "a/f"), []byte("HELLO"), 0o644) }, Options{}, "a/f: got"},
		{"mode", func(d string) { os.Chmod(filepath.Join(d, "a/g"), 0o600) }, Options{}, "a/g: got"},
		{"missing", func(d string) { os.Remove(filepath.Join(d, "top")) }, Options{}, "top: missing"},
		{"extra", func(d string) { os.WriteFile(filepath.Join(d, "new"), nil, 0o644) }, Options{}, "new: only in"},
		{"target", func(d string) { os.Remove(filepath.Join(d, "l")); os.Symlink("a/g", filepath.Join(d, "l")) }, Options{}, "l: got"},
		{"hard link", func(d string) { os.Link(filepath.Join(d, "a/f"), filepath.Join(d, "a/h")) }, Options{NlinkOne: true}, "nlink 2, want 1"},
		{"only", func(d string) { os.WriteFile(filepath.Join(d, "top"), []byte("changed"), 0o644) }, Options{Only: "a"}, ""},
		{"few", func(string) {}, Options{MinEntries: 100}, "compared only"},
	} {
		t.Run(c.name, func(t *testing.T) {
			want, got := tree(t), tree(t)
			c.change(got)
			errs := compare(t, got, want, c.o)
			switch {
			case c.want == "" && len(errs) > 0:
				t.Errorf("unexpected failures: %q", errs)
			case c.want != "" && (len(errs) == 0 || !strings.Contains(strings.Join(errs, "\n"), c.want)):
				t.Errorf("failures %q, want one with %q", errs, c.want)
			}
		})
	}
}
