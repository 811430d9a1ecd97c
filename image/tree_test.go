package image

import (
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
