package squashfs_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/closurefs/closurefs/image"
	"github.com/closurefs/closurefs/image/squashfs"
	"github.com/closurefs/closurefs/internal/treetest"
	"golang.org/x/sys/unix"
)

// wTree builds a source tree exercising the writer: files of every size
// class around the block size, sparse and incompressible content,
// duplicates, hard links, symlinks, a large directory, special files (as
// root) and xattrs where the filesystem takes them.
func wTree(t testing.TB, huge bool) string {
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	rng := rand.New(rand.NewPCG(1, 2))
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	write := func(name string, data []byte, mode os.FileMode) {
		p := filepath.Join(root, name)
		must(os.MkdirAll(filepath.Dir(p), 0o755))
		must(os.WriteFile(p, data, mode))
		must(os.Chmod(p, mode))
	}
	text := func(n int) []byte {
		words := []string{"nix", "store", "closure", "squashfs", "block", "fragment", "lib", "bin", "\n"}
		var b bytes.Buffer
		for b.Len() < n {
			b.WriteString(words[rng.IntN(len(words))])
			b.WriteByte(' ')
		}
		return b.Bytes()[:n]
	}
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	write("empty", nil, 0o644)
	write("small.txt", []byte("hello\n"), 0o644)
	write("exe", text(5000), 0o755)
	write("setuid", text(100), 0o4755)
	write("dir/4k", text(4096), 0o644)
	write("dir/128k", text(128<<10), 0o644)
	write("dir/big.txt", text(1<<20+12345), 0o444)
	write("dir/random", random(300000), 0o644)
	write("dir/random-copy", nil, 0o644)
	must(os.WriteFile(filepath.Join(root, "dir/random-copy"), mustRead(t, filepath.Join(root, "dir/random")), 0o644))
	write("dir/dup1.txt", text(70000), 0o644)
	must(os.WriteFile(filepath.Join(root, "dir/dup2.txt"), mustRead(t, filepath.Join(root, "dir/dup1.txt")), 0o644))
	write("sparse/zeros", make([]byte, 3<<20+100), 0o644)
	mixed := append(append(text(200000), make([]byte, 2<<20)...), text(5000)...)
	write("sparse/mixed", mixed, 0o644)
	write("sparse/zero-tail", append(text(1<<20), make([]byte, 777)...), 0o644)
	must(os.Symlink("../small.txt", filepath.Join(root, "dir/link")))
	must(os.Symlink(strings.Repeat("x/", 200)+"y", filepath.Join(root, "longlink")))
	must(os.Symlink("dangling", filepath.Join(root, "dangling")))
	must(os.MkdirAll(filepath.Join(root, "emptydir"), 0o700))
	must(os.MkdirAll(filepath.Join(root, "sticky"), 0o1777))
	for i := range 600 {
		write(fmt.Sprintf("large/entry-%04d-%s", i, strings.Repeat("n", i%50)), text(i*7%300), 0o644)
	}
	write("large/"+strings.Repeat("L", 255), []byte("long name"), 0o644)
	// A listing over 64 KiB: an extended directory with an index.
	for i := range 2000 * btoi(huge) {
		write(fmt.Sprintf("huge/%05d-%s", i, strings.Repeat("h", 20)), nil, 0o644)
	}
	write("hl/a", text(9000), 0o644)
	must(os.Link(filepath.Join(root, "hl/a"), filepath.Join(root, "hl/b")))
	must(os.Link(filepath.Join(root, "hl/a"), filepath.Join(root, "hl/c")))
	// Xattrs where the filesystem takes them (user.* on a file, a
	// directory; security.* needs root).
	unix.Setxattr(filepath.Join(root, "small.txt"), "user.test", []byte("value"), 0)
	unix.Setxattr(filepath.Join(root, "dir"), "user.dir", []byte("d"), 0)
	unix.Setxattr(filepath.Join(root, "exe"), "user.test", []byte("value"), 0)
	must(os.MkdirAll(filepath.Join(root, "dev"), 0o755))
	must(unix.Mkfifo(filepath.Join(root, "dev/fifo"), 0o644))
	if os.Geteuid() == 0 {
		must(unix.Mknod(filepath.Join(root, "dev/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
		must(unix.Mknod(filepath.Join(root, "dev/blk"), unix.S_IFBLK|0o600, int(unix.Mkdev(259, 300))))
	}
	return root
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func lstat(p string) (os.FileInfo, error) { return os.Lstat(p) }

func mustRead(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// writeImage writes the tree of src with opts to a file in a temp dir.
func writeImage(t testing.TB, tree *image.Tree, opts squashfs.WriterOptions) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "out.sqfs")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := squashfs.NewWriter(f, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(context.Background(), tree); err != nil {
		t.Fatal(err)
	}
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size()%4096 != 0 {
		t.Errorf("image size %d is not padded to 4 KiB", fi.Size())
	}
	return img
}

func tool(t testing.TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s not installed", name)
	}
}

func runTool(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// mountImage loop-mounts img read-only with the kernel's squashfs and
// returns the mount point, unmounted at cleanup.
func mountImage(t *testing.T, img string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root")
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		t.Skip("no loop device support")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-o", "loop,ro", "-t", "squashfs", img, mnt).CombinedOutput(); err != nil {
		t.Fatalf("kernel refuses the image: mount: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v\n%s", mnt, err, out)
		}
	})
	return mnt
}

func TestWriterMatrix(t *testing.T) {
	src := wTree(t, true)
	cases := []struct {
		name      string
		comp      string
		bs        int
		noFrag    bool
		keepLinks bool
		export    bool
		gensq     []string // gensquashfs -c/-X for the sqfsdiff comparison
		extract   bool     // extract with unsquashfs and rdsquashfs too
		xattrs    bool     // store the source's xattrs
	}{
		{name: "zstd-128k-xattrs", comp: "zstd", bs: 128 << 10, gensq: []string{"-c", "zstd", "-X", "level=15", "-x"}, extract: true, xattrs: true},
		{name: "gzip-4k-nofrag", comp: "gzip", bs: 4096, noFrag: true, gensq: []string{"-c", "gzip", "-b", "4096"}},
		{name: "xz-1m-links", comp: "xz", bs: 1 << 20, keepLinks: true, export: true, extract: true},
		{name: "lz4-4k", comp: "lz4", bs: 4096},
		{name: "lz4hc-1m-nofrag", comp: "lz4hc", bs: 1 << 20, noFrag: true},
		{name: "zstd3-4k-links", comp: "zstd,3", bs: 4096, keepLinks: true},
		// Levels 16 and up use closurefs's own zstd encoder (internal/zstdenc).
		{name: "zstd19-1m", comp: "zstd,19", bs: 1 << 20, extract: true},
		{name: "zstd16-4k-nofrag", comp: "zstd,16", bs: 4096, noFrag: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.xattrs && treetest.XattrString(filepath.Join(src, "small.txt")) == "" {
				t.Log("the temp filesystem takes no user xattrs: xattrs not tested")
			}
			tree, err := image.FromDir(src, image.Options{AllRoot: true, KeepHardLinks: tc.keepLinks, Xattrs: tc.xattrs})
			if err != nil {
				t.Fatal(err)
			}
			c, err := squashfs.ParseCompressor(tc.comp)
			if err != nil {
				t.Fatal(err)
			}
			img := writeImage(t, tree, squashfs.WriterOptions{BlockSize: tc.bs, Codec: c, NoFragments: tc.noFrag, Exportable: tc.export, Jobs: 2})
			if out := runTool(t, "blkid", "-p", img); !strings.Contains(out, `TYPE="squashfs"`) {
				t.Errorf("blkid -p does not see squashfs: %s", out)
			}
			mnt := mountImage(t, img)
			treetest.Compare(t, mnt, src, treetest.Options{Nlink: tc.keepLinks, NlinkOne: !tc.keepLinks, DirNlink: true, RootOwned: true, Rdev: true, Xattrs: tc.xattrs, MinEntries: 10})

			if tc.gensq != nil && !tc.keepLinks {
				tool(t, "gensquashfs")
				g := filepath.Join(t.TempDir(), "g.sqfs")
				args := append(append([]string{"-q", "--all-root", "-D", src}, tc.gensq...), g)
				runTool(t, "gensquashfs", args...)
				runTool(t, "sqfsdiff", "-a", g, "-b", img)
			}
			tool(t, "unsquashfs")
			list := runTool(t, "unsquashfs", "-l", img)
			if !strings.Contains(list, "squashfs-root/large/entry-0599") {
				t.Errorf("unsquashfs -l misses entries:\n%.500s", list)
			}
			if !tc.extract {
				return
			}
			x := filepath.Join(t.TempDir(), "x")
			runTool(t, "unsquashfs", "-no-xattrs", "-d", x, img)
			treetest.Compare(t, x, src, treetest.Options{Nlink: tc.keepLinks, NlinkOne: !tc.keepLinks, DirNlink: true, Rdev: true, MinEntries: 10})

			tool(t, "rdsquashfs")
			if out := runTool(t, "rdsquashfs", "-l", "/", img); !strings.Contains(out, "large") {
				t.Errorf("rdsquashfs -l: %s", out)
			}
			y := filepath.Join(t.TempDir(), "y")
			runTool(t, "rdsquashfs", "-u", "/", "-p", y, "-C", img)
			treetest.Compare(t, y, src, treetest.Options{DirNlink: true, Rdev: true, MinEntries: 10})
		})
	}
}

func TestWriterDeterministic(t *testing.T) {
	src := wTree(t, false)
	// An "optimised" copy: identical content, duplicates hard-linked.
	opt := filepath.Join(t.TempDir(), "root")
	if out, err := exec.Command("cp", "-a", src, opt).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	for _, pair := range [][2]string{{"dir/random", "dir/random-copy"}, {"dir/dup1.txt", "dir/dup2.txt"}} {
		b := filepath.Join(opt, pair[1])
		if err := os.Remove(b); err != nil {
			t.Fatal(err)
		}
		if err := os.Link(filepath.Join(opt, pair[0]), b); err != nil {
			t.Fatal(err)
		}
	}
	build := func(dir string, jobs int) []byte {
		tree, err := image.FromDir(dir, image.Options{AllRoot: true})
		if err != nil {
			t.Fatal(err)
		}
		return mustRead(t, writeImage(t, tree, squashfs.WriterOptions{Jobs: jobs}))
	}
	a := build(src, 1)
	if b := build(src, 2); !bytes.Equal(a, b) {
		t.Error("-j 1 and -j 2 images differ")
	}
	if b := build(opt, 2); !bytes.Equal(a, b) {
		t.Error("images of the plain and the hard-linked (optimised) tree differ")
	}
}

// TestWriterDedupe checks that identical files are stored once: a tree
// with a duplicate of a large incompressible file is barely larger.
func TestWriterDedupe(t *testing.T) {
	dir := t.TempDir()
	data := make([]byte, 1<<20+5000)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	os.WriteFile(filepath.Join(dir, "a"), data, 0o644)
	one, err := image.FromDir(dir, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s1 := len(mustRead(t, writeImage(t, one, squashfs.WriterOptions{})))
	os.WriteFile(filepath.Join(dir, "b"), data, 0o644)
	two, err := image.FromDir(dir, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s2 := len(mustRead(t, writeImage(t, two, squashfs.WriterOptions{})))
	if s1 < len(data) || s2 > s1+4096 {
		t.Errorf("image sizes %d (one copy) and %d (two copies): duplicate not shared", s1, s2)
	}
}

// TestWriterCancel checks that a cancelled context stops the writer with
// ctx.Err().
func TestWriterCancel(t *testing.T) {
	src := wTree(t, false)
	tree, err := image.FromDir(src, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	f, err := os.Create(filepath.Join(t.TempDir(), "img"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := squashfs.NewWriter(f, squashfs.WriterOptions{BlockSize: 4096, Progress: func(int64) {
		if calls++; calls == 3 {
			cancel()
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(ctx, tree); !errors.Is(err, context.Canceled) {
		t.Fatalf("Write after cancel: %v, want context.Canceled", err)
	}
}

func TestParseCompressor(t *testing.T) {
	for _, tc := range []struct {
		spec, name string
		level      int
		bad        string
	}{
		{spec: "zstd", name: "zstd", level: 15},
		{spec: "zstd,19", name: "zstd", level: 19},
		{spec: "zstd,level=3", name: "zstd", level: 3},
		{spec: "gzip", name: "zlib", level: 9},
		{spec: "gzip,1", name: "zlib", level: 1},
		{spec: "xz", name: "xz"},
		{spec: "lz4", name: "lz4"},
		{spec: "lz4,hc", name: "lz4hc", level: 9},
		{spec: "lz4hc,12", name: "lz4hc", level: 12},
		{spec: "lzo", bad: "lzo is not supported"},
		{spec: "lzma", bad: "not supported"},
		{spec: "zstd,99", bad: "out of range"},
		{spec: "zstd,x", bad: "bad level"},
		{spec: "brotli", bad: "unknown compressor"},
	} {
		c, err := squashfs.ParseCompressor(tc.spec)
		if tc.bad != "" {
			if err == nil || !strings.Contains(err.Error(), tc.bad) {
				t.Errorf("ParseCompressor(%q) = %v, want error containing %q", tc.spec, err, tc.bad)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseCompressor(%q): %v", tc.spec, err)
			continue
		}
		if c.Name() != tc.name || c.Level() != tc.level {
			t.Errorf("ParseCompressor(%q) = %s level %d, want %s level %d", tc.spec, c.Name(), c.Level(), tc.name, tc.level)
		}
	}
}

func TestNewWriterBlockSize(t *testing.T) {
	for _, bs := range []int{1024, 3 << 10, 2 << 20, 100000} {
		if _, err := squashfs.NewWriter(nil, squashfs.WriterOptions{BlockSize: bs}); err == nil {
			t.Errorf("block size %d accepted", bs)
		}
	}
}

func BenchmarkWrite(b *testing.B) {
	src := "/usr/local/go/src/net"
	if _, err := os.Stat(src); err != nil {
		b.Skip("no Go source tree to pack")
	}
	tree, err := image.FromDir(src, image.Options{AllRoot: true})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(tree.Stats.Bytes)
	for b.Loop() {
		f, err := os.CreateTemp(b.TempDir(), "img")
		if err != nil {
			b.Fatal(err)
		}
		w, _ := squashfs.NewWriter(f, squashfs.WriterOptions{})
		if err := w.Write(context.Background(), tree); err != nil {
			b.Fatal(err)
		}
		f.Close()
		os.Remove(f.Name())
	}
}

// TestWriterReadBack reads a written image back with this package's
// Reader: every file's content and every symlink target match the source.
func TestWriterReadBack(t *testing.T) {
	src := wTree(t, false)
	tree, err := image.FromDir(src, image.Options{Xattrs: true})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := squashfs.ParseCompressor("gzip")
	img := writeImage(t, tree, squashfs.WriterOptions{Codec: c, BlockSize: 8192})
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rd, err := squashfs.Open(f)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	err = tree.Walk(func(nd *image.Node) error {
		p := nd.Path()
		switch {
		case nd.IsRegular():
			got, err := fs.ReadFile(rd, p)
			if err != nil {
				return err
			}
			if !bytes.Equal(got, mustRead(t, filepath.Join(src, p))) {
				t.Errorf("%s: content differs", p)
			}
			n++
		case nd.IsSymlink():
			got, err := rd.ReadLink(p)
			if err != nil {
				return err
			}
			if got != nd.Target {
				t.Errorf("%s: target %q, want %q", p, got, nd.Target)
			}
		}
		if len(nd.Xattrs) > 0 {
			xs, err := rd.Xattrs(p)
			if err != nil {
				return err
			}
			if fmt.Sprint(xs) != fmt.Sprint(nd.Xattrs) {
				t.Errorf("%s: xattrs %v, want %v", p, xs, nd.Xattrs)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 600 {
		t.Errorf("read back only %d files", n)
	}
}
