package image

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// makeStore writes two store-path-like directories with identical files in
// them; if link is set, the identical files are hard links, as after
// nix-store --optimise.
func makeStore(t *testing.T, link bool) (dir string, paths []string) {
	t.Helper()
	dir = t.TempDir()
	a := filepath.Join(dir, "aaaa-a")
	b := filepath.Join(dir, "bbbb-b")
	single := filepath.Join(dir, "cccc-single")
	for _, d := range []string{a + "/bin", b + "/share/empty", b + "/z"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(a+"/bin/tool", []byte("same content\n"), 0o555)
	if link {
		if err := os.Link(a+"/bin/tool", b+"/z/copy"); err != nil {
			t.Fatal(err)
		}
	} else {
		os.WriteFile(b+"/z/copy", []byte("same content\n"), 0o555)
	}
	os.WriteFile(b+"/z/other", []byte("diff content\n"), 0o444) // same size, other content
	os.WriteFile(b+"/empty", nil, 0o444)
	os.Symlink("../aaaa-a/bin/tool", b+"/link")
	os.WriteFile(single, []byte("x"), 0o444)
	// Unsorted on purpose: the tree sorts.
	return dir, []string{b, single, a}
}

type flat struct {
	Path, Target string
	Mode         fs.FileMode
	Size         int64
	Nlink        uint32
	Link, Same   string
	UID          uint32
}

func flatten(t *testing.T, tr *Tree) []flat {
	var out []flat
	tr.Walk(func(n *Node) error {
		f := flat{Path: n.Path(), Target: n.Target, Mode: n.Mode, Size: n.Size, Nlink: n.Nlink, UID: n.UID}
		if n.Link != nil {
			f.Link = n.Link.Path()
		}
		if n.Same != nil {
			f.Same = n.Same.Path()
		}
		out = append(out, f)
		return nil
	})
	return out
}

func TestFromStorePathsDedupe(t *testing.T) {
	_, plainPaths := makeStore(t, false)
	_, optPaths := makeStore(t, true)
	opts := Options{AllRoot: true, Registration: []byte("reg\n")}
	plain, err := FromStorePaths(plainPaths, opts)
	if err != nil {
		t.Fatal(err)
	}
	opt, err := FromStorePaths(optPaths, opts)
	if err != nil {
		t.Fatal(err)
	}
	fp, fo := flatten(t, plain), flatten(t, opt)
	if !reflect.DeepEqual(fp, fo) {
		t.Fatalf("optimised and plain stores give different trees:\n%v\n%v", fp, fo)
	}
	var names []string
	for _, c := range plain.Root.Children {
		names = append(names, c.Name)
	}
	want := []string{"aaaa-a", "bbbb-b", "cccc-single", RegistrationName}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("root = %v, want %v", names, want)
	}
	copyNode, _ := plain.Lookup("bbbb-b/z/copy")
	if copyNode.Same == nil || copyNode.Same.Path() != "aaaa-a/bin/tool" {
		t.Fatalf("copy.Same = %v, want aaaa-a/bin/tool", copyNode.Same)
	}
	other, _ := plain.Lookup("bbbb-b/z/other")
	if other.Same != nil {
		t.Fatalf("file with other content marked Same as %s", other.Same.Path())
	}
	if plain.Root.Nlink != 4 { // 2 + two store paths that are directories
		t.Errorf("root nlink = %d, want 4", plain.Root.Nlink)
	}
	if s := plain.Stats; s.Files != 6 || s.Symlinks != 1 || s.StorePaths != 3 {
		t.Errorf("stats = %+v", s)
	}
	reg, _ := plain.Lookup(RegistrationName)
	f, _ := reg.Open()
	b, _ := io.ReadAll(f)
	if string(b) != "reg\n" {
		t.Errorf("registration content %q", b)
	}
}

func TestKeepHardLinks(t *testing.T) {
	_, paths := makeStore(t, true)
	tr, err := FromStorePaths(paths, Options{KeepHardLinks: true})
	if err != nil {
		t.Fatal(err)
	}
	tool, _ := tr.Lookup("aaaa-a/bin/tool")
	cp, _ := tr.Lookup("bbbb-b/z/copy")
	if cp.Link != tool || tool.Nlink != 2 || tool.Link != nil {
		t.Fatalf("hard link not kept: copy.Link=%v tool.Nlink=%d", cp.Link, tool.Nlink)
	}
	if tr.Stats.Bytes != int64(len("same content\n")+len("diff content\n")+1) {
		t.Errorf("bytes = %d counts a hard-linked inode twice", tr.Stats.Bytes)
	}
}

func TestFromDir(t *testing.T) {
	dir, _ := makeStore(t, false)
	tr, err := FromDir(dir, Options{KeepMtime: true})
	if err != nil {
		t.Fatal(err)
	}
	n, ok := tr.Lookup("bbbb-b/link")
	if !ok || !n.IsSymlink() || n.Target != "../aaaa-a/bin/tool" {
		t.Fatalf("symlink = %+v", n)
	}
	e, ok := tr.Lookup("bbbb-b/share/empty")
	if !ok || !e.IsDir() || len(e.Children) != 0 || e.Nlink != 2 {
		t.Fatalf("empty dir = %+v", e)
	}
	if _, err := FromDir(filepath.Join(dir, "cccc-single"), Options{}); err == nil {
		t.Fatal("FromDir of a file succeeded")
	}
	if _, err := FromStorePaths([]string{filepath.Join(dir, "missing")}, Options{}); err == nil {
		t.Fatal("FromStorePaths of a missing path succeeded")
	}
}

// TestReadSegment reads segments of a file from disk and of one held in
// memory, with and without a spare byte of capacity for the end probe,
// and checks that a file that shrank or grew is reported as changed.
func TestReadSegment(t *testing.T) {
	dir := t.TempDir()
	content := []byte("0123456789abcdefghij")
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, content, 0o644); err != nil {
		t.Fatal(err)
	}
	disk := &Node{Name: "f", Mode: 0o644, Size: int64(len(content)), Source: p}
	mem := &Node{Name: "m", Mode: 0o644, Size: int64(len(content)), Data: content}
	for _, n := range []*Node{disk, mem} {
		for _, c := range []struct{ off, len, cap int }{
			{0, 20, 20}, {0, 20, 21}, {0, 5, 5}, {5, 10, 11}, {15, 5, 5}, {15, 5, 6}, {20, 0, 1},
		} {
			b := make([]byte, c.len, c.cap)
			if err := n.ReadSegment(b, int64(c.off)); err != nil {
				t.Errorf("%s %+v: %v", n.Name, c, err)
				continue
			}
			if string(b) != string(content[c.off:c.off+c.len]) {
				t.Errorf("%s %+v: read %q", n.Name, c, b)
			}
		}
		if err := n.ReadSegment(make([]byte, 5), 16); err == nil {
			t.Errorf("%s: a segment past the size reads without error", n.Name)
		}
	}
	for _, c := range []struct {
		name    string
		size    int64
		off, n  int
		spare   bool
		changed bool
	}{
		{"grew, probe", 19, 10, 9, false, true},
		{"grew, spare byte", 19, 10, 9, true, true},
		{"grew, not at the end", 19, 0, 5, true, false},
		{"shrank", 21, 10, 11, true, true},
		{"shrank, probe", 21, 0, 21, false, true},
	} {
		n := &Node{Name: "f", Mode: 0o644, Size: c.size, Source: p}
		b := make([]byte, c.n, c.n+map[bool]int{true: 1}[c.spare])
		err := n.ReadSegment(b, int64(c.off))
		if got := errors.Is(err, ErrChanged); got != c.changed {
			t.Errorf("%s: error %v, want changed=%v", c.name, err, c.changed)
		}
	}
	if err := (&Node{Name: "gone", Mode: 0o644, Size: 1, Source: filepath.Join(dir, "gone")}).ReadSegment(make([]byte, 1), 0); err == nil || errors.Is(err, ErrChanged) {
		t.Errorf("missing source: error %v", err)
	}
}

// TestDedupeMin checks that files smaller than Options.DedupeMin are left
// out of the search for identical contents, and larger ones are not.
func TestDedupeMin(t *testing.T) {
	dir := t.TempDir()
	for name, data := range map[string]string{"s1": "small", "s2": "small", "l1": "larger file", "l2": "larger file"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tree, err := FromDir(dir, Options{DedupeMin: 6})
	if err != nil {
		t.Fatal(err)
	}
	for name, same := range map[string]bool{"s1": false, "s2": false, "l1": false, "l2": true} {
		n, _ := tree.Lookup(name)
		if got := n.Same != nil; got != same {
			t.Errorf("%s: Same set %v, want %v", name, got, same)
		}
		if small := name[0] == 's'; n.HasDigest == small {
			t.Errorf("%s: HasDigest %v", name, n.HasDigest)
		}
	}
}
