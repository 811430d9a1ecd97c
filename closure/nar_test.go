package closure

import (
	"bytes"
	"crypto/sha256"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
)

// makeTree builds a tree with the NAR edge cases under dir and returns the
// names of the top-level entries to serialise.
func makeTree(t testing.TB, dir string) []string {
	t.Helper()
	write := func(name string, size int, mode os.FileMode) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, size)
		for i := range b {
			b[i] = byte(i*7 + len(name))
		}
		if err := os.WriteFile(p, b, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	link := func(target, name string) {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	write("file", 5, 0o644)
	write("exe", 9, 0o755)
	link("file", "link")
	link("/nonexistent/dangling", "abslink")
	for _, n := range []int{0, 1, 7, 8, 9, 4095, 4096, 4097, 128 << 10, 128<<10 + 1, 1<<20 + 3, 3<<20 + 5} {
		write(filepath.Join("tree", "sizes", "f"+strings.Repeat("x", n%5)+string(rune('a'+n%23))+"-"+strconv.Itoa(n)), n, 0o444)
	}
	write("tree/modes/owner-x", 3, 0o544)
	write("tree/modes/group-x-only", 3, 0o454)
	write("tree/modes/other-x-only", 3, 0o445)
	write("tree/names/with space", 1, 0o644)
	write("tree/names/ünïcödé", 1, 0o644)
	write("tree/names/B", 1, 0o644)
	write("tree/names/a", 1, 0o644)
	write("tree/names/latin1-\xe9", 1, 0o644)
	write("tree/names/a-", 1, 0o644)
	write("tree/names/a.b", 1, 0o644)
	write("tree/names/"+strings.Repeat("n", 255), 1, 0o644)
	link("../names/a", "tree/links/rel")
	link("/abs/target", "tree/links/abs")
	link("dangling", "tree/links/dangling")
	link(strings.Repeat("t", 1000), "tree/links/long")
	os.MkdirAll(filepath.Join(dir, "tree/empty/deeper/still"), 0o755)
	os.MkdirAll(filepath.Join(dir, "tree/emptydir"), 0o755)
	deep := "tree/deep"
	for i := 0; i < 40; i++ {
		deep += "/d"
	}
	write(deep+"/leaf", 2, 0o644)
	for i := 0; i < 300; i++ {
		write("tree/many/e"+strconv.Itoa(i), i%3, 0o644)
	}
	return []string{"file", "exe", "link", "abslink", "tree"}
}

func needNix(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range append([]string{"nix-store"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (apt install nix-bin)", tool)
		}
	}
}

// genericFS hides DirFS's type, so the NAR writer takes its generic fs.FS
// path instead of the system-call fast path.
type genericFS struct{ DirFS }

func TestWriteNARMatchesNixStoreDump(t *testing.T) {
	needNix(t, "nix-hash")
	dir := t.TempDir()
	names := makeTree(t, dir)
	for _, fsys := range []fs.FS{DirFS(dir), genericFS{DirFS(dir)}} {
		for _, name := range names {
			want, err := exec.Command("nix-store", "--dump", filepath.Join(dir, name)).Output()
			if err != nil {
				t.Fatalf("nix-store --dump %s: %v", name, err)
			}
			var got bytes.Buffer
			if err := WriteNAR(&got, fsys, name); err != nil {
				t.Fatalf("WriteNAR %s: %v", name, err)
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Errorf("%T %s: WriteNAR gives %d bytes differing from nix-store --dump's %d (first difference at %d)",
					fsys, name, got.Len(), len(want), firstDiff(got.Bytes(), want))
			}
			out, err := exec.Command("nix-hash", "--type", "sha256", "--base32", filepath.Join(dir, name)).Output()
			if err != nil {
				t.Fatal(err)
			}
			h, size, err := HashNAR(fsys, name)
			if err != nil {
				t.Fatal(err)
			}
			if got := EncodeBase32(h[:]); got != strings.TrimSpace(string(out)) {
				t.Errorf("%T %s: HashNAR = %s, nix-hash says %s", fsys, name, got, out)
			}
			if size != uint64(len(want)) {
				t.Errorf("%T %s: HashNAR size %d, want %d", fsys, name, size, len(want))
			}
		}
		// The whole tree as ".", and a nested name.
		for _, name := range []string{".", "tree/names"} {
			want, _ := exec.Command("nix-store", "--dump", filepath.Join(dir, name)).Output()
			var got bytes.Buffer
			if err := WriteNAR(&got, fsys, name); err != nil || !bytes.Equal(got.Bytes(), want) {
				t.Errorf("%T %q: NAR differs from nix-store --dump (%v)", fsys, name, err)
			}
		}
	}
	// Errors name the path.
	for _, fsys := range []fs.FS{DirFS(dir), genericFS{DirFS(dir)}} {
		for _, name := range []string{"missing", "../x", "/abs"} {
			if err := WriteNAR(io.Discard, fsys, name); err == nil || !strings.Contains(err.Error(), strings.TrimPrefix(name, "/")) {
				t.Errorf("%T WriteNAR(%q): err = %v", fsys, name, err)
			}
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestWriteNARMapFS(t *testing.T) {
	// A tree without symlinks in a plain fs.FS (no ReadLinkFS) serialises
	// the same as on disk.
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "d/sub"), 0o755)
	os.WriteFile(filepath.Join(dir, "d/sub/x"), []byte("hello"), 0o755)
	os.WriteFile(filepath.Join(dir, "d/a"), nil, 0o644)
	m := fstest.MapFS{
		"d":       {Mode: 0o755 | os.ModeDir},
		"d/sub":   {Mode: 0o755 | os.ModeDir},
		"d/sub/x": {Data: []byte("hello"), Mode: 0o755},
		"d/a":     {Mode: 0o644},
	}
	var a, b bytes.Buffer
	if err := WriteNAR(&a, m, "d"); err != nil {
		t.Fatal(err)
	}
	if err := WriteNAR(&b, os.DirFS(dir), "d"); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Errorf("MapFS and DirFS NARs differ")
	}
	// Unsupported types and changing files are errors.
	m["d/fifo"] = &fstest.MapFile{Mode: os.ModeNamedPipe}
	if err := WriteNAR(io.Discard, m, "d"); err == nil || !strings.Contains(err.Error(), "unsupported file type") {
		t.Errorf("fifo: err = %v", err)
	}
}

func TestHashPaths(t *testing.T) {
	dir := t.TempDir()
	names := makeTree(t, dir)
	fsys := DirFS(dir)
	for _, jobs := range []int{1, 3} {
		res, err := HashPaths(fsys, names, HashOptions{Jobs: jobs})
		if err != nil {
			t.Fatal(err)
		}
		for i, n := range names {
			var buf bytes.Buffer
			WriteNAR(&buf, fsys, n)
			if sha256.Sum256(buf.Bytes()) != res[i].Hash || uint64(buf.Len()) != res[i].Size {
				t.Errorf("jobs %d: %s hash differs from the NAR's", jobs, n)
			}
		}
	}
	if _, err := HashPaths(fsys, []string{"file", "missing"}, HashOptions{Jobs: 2}); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing path: err = %v", err)
	}
}
