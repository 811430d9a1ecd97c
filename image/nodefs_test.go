package image

import (
	"errors"
	"io"
	"io/fs"
	"sort"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// memNode is a node of memTree: a directory, file or symlink.
type memNode struct {
	mode fs.FileMode
	data string // file contents or symlink target
	kids map[string]*memNode
}

// memTree is the smallest NodeTree, for testing NodeFS on its own.
type memTree struct{ root *memNode }

func (t memTree) Root() (*memNode, error) { return t.root, nil }
func (t memTree) Lookup(dir *memNode, name string) (*memNode, error) {
	if n, ok := dir.kids[name]; ok {
		return n, nil
	}
	return nil, fs.ErrNotExist
}
func (t memTree) Info(name string, n *memNode) fs.FileInfo { return memInfo{name, n} }
func (t memTree) ReadLink(n *memNode) (string, error)      { return n.data, nil }
func (t memTree) OpenFile(n *memNode) (io.ReaderAt, error) {
	return strings.NewReader(n.data), nil
}
func (t memTree) Xattrs(n *memNode) ([]Xattr, error) { return nil, nil }
func (t memTree) OpenDir(n *memNode) (DirIter, error) {
	var names []string
	for k := range n.kids {
		names = append(names, k)
	}
	sort.Strings(names)
	it := make(SliceDirIter, len(names))
	for i, k := range names {
		it[i] = fs.FileInfoToDirEntry(memInfo{k, n.kids[k]})
	}
	return &it, nil
}

type memInfo struct {
	name string
	n    *memNode
}

func (i memInfo) Name() string       { return i.name }
func (i memInfo) Size() int64        { return int64(len(i.n.data)) }
func (i memInfo) Mode() fs.FileMode  { return i.n.mode }
func (i memInfo) ModTime() time.Time { return time.Unix(0, 0) }
func (i memInfo) IsDir() bool        { return i.n.mode.IsDir() }
func (i memInfo) Sys() any           { return nil }

func memDir(kids map[string]*memNode) *memNode { return &memNode{mode: fs.ModeDir | 0o555, kids: kids} }
func mFile(s string) *memNode                  { return &memNode{mode: 0o444, data: s} }
func memLink(t string) *memNode                { return &memNode{mode: fs.ModeSymlink | 0o777, data: t} }

func TestNodeFS(t *testing.T) {
	loop := memDir(map[string]*memNode{"a": memLink("b"), "b": memLink("a")})
	tr := memTree{memDir(map[string]*memNode{
		"f": mFile("hello"),
		"d": memDir(map[string]*memNode{"g": mFile("deep"), "up": memLink("../f"),
			"e": memDir(map[string]*memNode{"h": mFile("deeper")})}),
		// ".." after a symlink goes up from where the symlink leads.
		"sl":    memLink("d/e"),
		"via":   memLink("sl/../g"),
		"dotty": memLink("./d/./e/../g"),
		"slash": memLink("d/e/"),
		// b/e/../../.. leaves the image through a's target, not b's.
		"a2":    memLink("dir/e/../../.."),
		"rel":   memLink("d/g"),
		"dir":   memLink("d"),
		"abs":   memLink("/etc/passwd"),
		"out":   memLink("../x"),
		"empty": memLink(""),
		"loop":  loop,
	})}
	// fstest.TestFS opens every entry: give it the tree without the
	// broken symlinks.
	good := memTree{memDir(map[string]*memNode{})}
	for _, k := range []string{"f", "d", "rel", "dir"} {
		good.root.kids[k] = tr.root.kids[k]
	}
	if err := fstest.TestFS(NewNodeFS[*memNode](good), "f", "d/g", "d/up", "rel"); err != nil {
		t.Fatal(err)
	}
	fsys := NewNodeFS[*memNode](tr)
	for _, c := range []struct {
		name, want, err string // want: contents; err: substring of the error
	}{
		{"f", "hello", ""},
		{"rel", "deep", ""},
		{"dir/up", "hello", ""},
		{"via", "deep", ""},
		{"dotty", "deep", ""},
		{"slash/h", "deeper", ""},
		{"sl/h", "deeper", ""},
		{"a2", "", "symlink a2: target leaves the image"},
		{"d/up", "hello", ""},
		{"abs", "", "absolute target"},
		{"out", "", "leaves the image"},
		{"empty", "", "empty target"},
		{"loop/a", "", "too many levels"},
		{"f/x", "", "not a directory"},
		{"missing", "", "file does not exist"},
		{"/f", "", "invalid argument"},
	} {
		b, err := fs.ReadFile(fsys, c.name)
		switch {
		case c.err == "" && (err != nil || string(b) != c.want):
			t.Errorf("%s: got %q, %v; want %q", c.name, b, err, c.want)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s: got %q, %v; want an error with %q", c.name, b, err, c.err)
		}
	}
	// Paths typed by a user: ".." of their own stays at the root, also
	// after a symlink; a final symlink is kept unless a "/" follows.
	for in, want := range map[string]string{
		"/": ".", "sl/..": "d", "sl/../../f": "f", "sl/../../../f": "f", "/d/e/../../..": ".",
		"sl": "sl", "sl/": "d/e", "./dir/./g": "d/g",
	} {
		if got, err := fsys.Canonical(in, false); err != nil || got != want {
			t.Errorf("Canonical(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := fsys.Canonical("f/", false); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("Canonical(f/): %v", err)
	}
	if _, err := fsys.Lstat("abs"); err != nil {
		t.Errorf("lstat of a symlink to outside the image: %v", err)
	}
	if tg, err := fsys.ReadLink("out"); err != nil || tg != "../x" {
		t.Errorf("readlink out: %q, %v", tg, err)
	}
	if _, err := fsys.ReadLink("f"); !errors.Is(err, fs.ErrInvalid) {
		t.Errorf("readlink of a file: %v, want ErrInvalid", err)
	}
	if _, err := fsys.ReadDir("f"); err == nil {
		t.Error("readdir of a file succeeded")
	}
	f, _ := fsys.Open("f")
	ra := f.(io.ReaderAt)
	if _, err := ra.ReadAt(make([]byte, 1), -1); !errors.Is(err, fs.ErrInvalid) {
		t.Errorf("ReadAt at -1: %v", err)
	}
	f.Close()
	if _, err := f.Read(make([]byte, 1)); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("read after close: %v", err)
	}
}
