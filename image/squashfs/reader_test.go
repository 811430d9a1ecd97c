package squashfs

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/closurefs/closurefs/image"
	"golang.org/x/sys/unix"
)

// treeOpts selects the parts of the reader test tree.
type treeOpts struct {
	badLinks bool // dangling and absolute symlinks (fstest.TestFS can't follow them)
	special  bool // devices, fifo, socket, odd owners (needs root)
}

// makeTree builds the reader test tree with the edge cases the reader
// must handle and returns its path.
func makeTree(t testing.TB, o treeOpts) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "tree")
	rng := rand.New(rand.NewPCG(1, 2))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	text := func(n int) []byte {
		var buf bytes.Buffer
		for buf.Len() < n {
			fmt.Fprintf(&buf, "line %d of some compressible text %x\n", buf.Len(), rng.Uint32()%16)
		}
		return buf.Bytes()[:n]
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	write := func(name string, data []byte, mode os.FileMode) {
		p := filepath.Join(root, name)
		must(os.MkdirAll(filepath.Dir(p), 0o755))
		must(os.WriteFile(p, data, 0o644))
		must(os.Chmod(p, mode))
	}
	must(os.MkdirAll(root, 0o755))
	write("empty", nil, 0o644)
	write("small", []byte("hello\n"), 0o644)
	write("block4096", random(4096), 0o644)
	write("block4097", random(4097), 0o600)
	write("text300k", text(300<<10), 0o644)
	write("random200k", random(200<<10), 0o755)
	write("zeros", make([]byte, 200<<10), 0o644)
	mixed := append(text(150<<10), random(70<<10)...)
	write("dup1", mixed, 0o644)
	write("sub/dup2", mixed, 0o644)
	write("setuid", []byte("#!/bin/sh\n"), 0o4755)
	write("noperm", []byte("x"), 0)
	// A sparse file: holes at the start and in the middle.
	sp := make([]byte, 1<<20+123)
	copy(sp[300<<10:], text(5000))
	copy(sp[len(sp)-100:], random(100))
	write("sparse", sp, 0o644)
	// Hard links.
	write("hard1", text(10000), 0o644)
	must(os.Link(filepath.Join(root, "hard1"), filepath.Join(root, "sub", "hard2")))
	// Symlinks.
	must(os.Symlink("small", filepath.Join(root, "link-rel")))
	must(os.Symlink("sub", filepath.Join(root, "link-dir")))
	must(os.Symlink("../small", filepath.Join(root, "sub", "link-up")))
	if o.badLinks {
		must(os.Symlink(strings.Repeat("x/", 500)+"end", filepath.Join(root, "sub", "link-long-dangling")))
		must(os.Symlink("nonexistent", filepath.Join(root, "dangling")))
		must(os.Symlink("/nix/store/abc-foo/bin/foo", filepath.Join(root, "abs")))
	}
	// Directories.
	must(os.MkdirAll(filepath.Join(root, "emptydir"), 0o755))
	must(os.MkdirAll(filepath.Join(root, "sub", "deeper", "deepest"), 0o750))
	write("sub/deeper/deepest/leaf", []byte("leaf"), 0o644)
	must(os.MkdirAll(filepath.Join(root, "sticky"), 0o755))
	must(os.Chmod(filepath.Join(root, "sticky"), 0o1777))
	// A big directory, listed over several metadata blocks (indexed).
	for i := range 1200 {
		write(fmt.Sprintf("bigdir/entry-%05d-with-a-longish-name-to-fill-blocks", i), []byte(fmt.Sprint(i)), 0o644)
	}
	// Odd names.
	write("with space", []byte("sp"), 0o644)
	write("ünïcödé", []byte("u"), 0o644)
	write(strings.Repeat("n", 255), []byte("long name"), 0o644)
	// Xattrs: some values repeated (stored out of line by mksquashfs).
	shared := bytes.Repeat([]byte("shared-value "), 30)
	for _, x := range []struct{ name, key string }{{"small", "user.a"}, {"text300k", "user.shared"}, {"random200k", "user.shared"}, {"sub", "user.shared"}, {"block4096", "trusted.t"}} {
		must(unix.Lsetxattr(filepath.Join(root, x.name), x.key, shared, 0))
	}
	must(unix.Lsetxattr(filepath.Join(root, "small"), "user.b", []byte("bee"), 0))
	must(unix.Lsetxattr(filepath.Join(root, "emptydir"), "user.empty", nil, 0))
	if o.special {
		must(unix.Mknod(filepath.Join(root, "chardev"), unix.S_IFCHR|0o644, int(unix.Mkdev(1, 3))))
		must(unix.Mknod(filepath.Join(root, "blockdev"), unix.S_IFBLK|0o600, int(unix.Mkdev(259, 70000))))
		must(unix.Mkfifo(filepath.Join(root, "fifo"), 0o644))
		l, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(root, "socket"), Net: "unix"})
		must(err)
		l.SetUnlinkOnClose(false)
		l.Close()
		must(os.Lchown(filepath.Join(root, "small"), 1000, 100))
		must(os.Lchown(filepath.Join(root, "sub"), 65534, 65534))
		must(os.Lchown(filepath.Join(root, "link-rel"), 12345, 54321))
	}
	// Mtimes, set last (children change their directories' mtimes).
	var paths []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		paths = append(paths, p)
		return err
	})
	sort.Sort(sort.Reverse(sort.StringSlice(paths)))
	for i, p := range paths {
		ts := unix.NsecToTimespec(time.Unix(1700000000+int64(i)*7919, 0).UnixNano())
		must(unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW))
	}
	return root
}

func isRoot() bool { return os.Geteuid() == 0 }

// treeOptsHere returns the richest tree this process can build.
func treeOptsHere() treeOpts { return treeOpts{badLinks: true, special: isRoot()} }

var (
	toolMu    sync.Mutex
	toolCache = map[string]bool{}
)

func haveTool(name string) bool {
	toolMu.Lock()
	defer toolMu.Unlock()
	ok, seen := toolCache[name]
	if !seen {
		_, err := exec.LookPath(name)
		ok = err == nil
		toolCache[name] = ok
	}
	return ok
}

// mkImage runs an image tool and returns the image path.
func mkImage(t testing.TB, src string, tool string, args ...string) string {
	t.Helper()
	if !haveTool(tool) {
		t.Skipf("%s not installed", tool)
	}
	img := filepath.Join(t.TempDir(), "img.sqfs")
	var cmd *exec.Cmd
	switch tool {
	case "mksquashfs":
		cmd = exec.Command(tool, append([]string{src, img, "-noappend", "-quiet", "-no-progress"}, args...)...)
	case "gensquashfs":
		cmd = exec.Command(tool, append([]string{"-q", "-f", "-D", src, "-k", "-x"}, append(args, img)...)...)
	default:
		t.Fatalf("unknown tool %s", tool)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, out)
	}
	return img
}

func openImage(t testing.TB, img string) *Reader {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	r, err := Open(f)
	if err != nil {
		t.Fatalf("Open(%s): %v", img, err)
	}
	return r
}

// compareOpts says what an image is expected to have kept.
type compareOpts struct {
	xattrs     bool // xattrs kept
	hardLinks  bool // hard links kept (nlink of files)
	dirNlink   bool // directory link counts as on disk
	owners     bool // uid/gid kept
	mtimes     bool // mtimes kept
	inodeNums  bool // inode numbers unique per inode and shared by hard links
	dirsMtimes bool // directory mtimes kept
	// noEmptyXattrs: xattrs with empty values are dropped (gensquashfs
	// 1.2 does; the kernel shows the same).
	noEmptyXattrs bool
	// sameIno: inode numbers equal the source's (a kernel mount of the
	// same image).
	sameIno bool
}

// compareTree checks that fsys shows exactly the tree at src.
func compareTree(t *testing.T, src string, fsys image.FS, o compareOpts) {
	t.Helper()
	nfiles := 0
	inoOf := map[uint64]string{}  // image inode number -> first path
	srcIno := map[uint64]uint64{} // source inode -> image inode
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		rel = filepath.ToSlash(rel)
		want, err := os.Lstat(p)
		if err != nil {
			return err
		}
		got, err := fsys.Lstat(rel)
		if err != nil {
			t.Errorf("%s: Lstat: %v", rel, err)
			return nil
		}
		nfiles++
		if got.Mode() != want.Mode() {
			t.Errorf("%s: mode %v, want %v", rel, got.Mode(), want.Mode())
			return nil
		}
		gi, ok := image.InodeOf(got)
		if !ok {
			t.Fatalf("%s: Sys() is %T", rel, got.Sys())
		}
		wi, _ := image.InodeOf(want)
		if o.owners && (gi.UID != wi.UID || gi.GID != wi.GID) {
			t.Errorf("%s: owner %d:%d, want %d:%d", rel, gi.UID, gi.GID, wi.UID, wi.GID)
		}
		if o.mtimes && (!want.IsDir() || o.dirsMtimes) && gi.Mtime.Unix() != wi.Mtime.Unix() {
			t.Errorf("%s: mtime %v, want %v", rel, gi.Mtime, wi.Mtime)
		}
		if got.ModTime().Unix() != gi.Mtime.Unix() {
			t.Errorf("%s: ModTime %v != Sys mtime %v", rel, got.ModTime(), gi.Mtime)
		}
		switch {
		case want.IsDir():
			if o.dirNlink && gi.Nlink != wi.Nlink {
				t.Errorf("%s: nlink %d, want %d", rel, gi.Nlink, wi.Nlink)
			}
			ents, err := fsys.ReadDir(rel)
			if err != nil {
				t.Errorf("%s: ReadDir: %v", rel, err)
				return nil
			}
			wents, _ := os.ReadDir(p)
			var gn, wn []string
			for _, e := range ents {
				gn = append(gn, e.Name())
			}
			for _, e := range wents {
				wn = append(wn, e.Name())
			}
			if strings.Join(gn, "/") != strings.Join(wn, "/") {
				t.Errorf("%s: entries %q, want %q", rel, gn, wn)
			}
		case want.Mode().IsRegular():
			if got.Size() != want.Size() {
				t.Errorf("%s: size %d, want %d", rel, got.Size(), want.Size())
			}
			wantData, _ := os.ReadFile(p)
			gotData, err := fs.ReadFile(fsys, rel)
			if err != nil {
				t.Errorf("%s: ReadFile: %v", rel, err)
			} else if !bytes.Equal(gotData, wantData) {
				t.Errorf("%s: content differs (%d bytes, want %d; sha256 %x want %x)", rel, len(gotData), len(wantData), sha256.Sum256(gotData), sha256.Sum256(wantData))
			}
			if o.hardLinks && gi.Nlink != wi.Nlink {
				t.Errorf("%s: nlink %d, want %d", rel, gi.Nlink, wi.Nlink)
			}
		case want.Mode()&fs.ModeSymlink != 0:
			wt, _ := os.Readlink(p)
			gt, err := fsys.ReadLink(rel)
			if err != nil || gt != wt {
				t.Errorf("%s: ReadLink = %q, %v; want %q", rel, gt, err, wt)
			}
			if got.Size() != int64(len(wt)) {
				t.Errorf("%s: symlink size %d, want %d", rel, got.Size(), len(wt))
			}
		case want.Mode()&fs.ModeDevice != 0:
			if gi.Rdev != wi.Rdev {
				t.Errorf("%s: rdev %#x, want %#x", rel, gi.Rdev, wi.Rdev)
			}
		}
		if o.sameIno && gi.Ino != wi.Ino {
			t.Errorf("%s: inode number %d, want %d", rel, gi.Ino, wi.Ino)
		}
		if o.inodeNums && !want.IsDir() {
			if prev, ok := srcIno[wi.Ino]; ok {
				if prev != gi.Ino {
					t.Errorf("%s: hard link has inode number %d, its first link %d", rel, gi.Ino, prev)
				}
			} else {
				if first, dup := inoOf[gi.Ino]; dup {
					t.Errorf("%s: inode number %d already used by %s", rel, gi.Ino, first)
				}
				srcIno[wi.Ino] = gi.Ino
				inoOf[gi.Ino] = rel
			}
		}
		if xfs, ok := fsys.(image.XattrFS); ok {
			gx, err := xfs.Xattrs(rel)
			if err != nil {
				t.Errorf("%s: Xattrs: %v", rel, err)
			}
			var wx []image.Xattr
			if o.xattrs {
				for _, x := range osXattrs(t, p) {
					if len(x.Value) > 0 || !o.noEmptyXattrs {
						wx = append(wx, x)
					}
				}
			}
			if fmt.Sprint(gx) != fmt.Sprint(wx) {
				t.Errorf("%s: xattrs %q, want %q", rel, gx, wx)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if nfiles < 10 {
		t.Fatalf("compared only %d entries", nfiles)
	}
}

func osXattrs(t *testing.T, p string) []image.Xattr {
	sz, err := unix.Llistxattr(p, nil)
	if err != nil || sz == 0 {
		return nil
	}
	buf := make([]byte, sz)
	sz, _ = unix.Llistxattr(p, buf)
	var xs []image.Xattr
	for _, k := range bytes.Split(buf[:sz], []byte{0}) {
		if len(k) == 0 {
			continue
		}
		v := make([]byte, 1<<16)
		n, err := unix.Lgetxattr(p, string(k), v)
		if err != nil {
			t.Fatal(err)
		}
		xs = append(xs, image.Xattr{Key: string(k), Value: v[:n]})
	}
	sort.Slice(xs, func(i, j int) bool { return xs[i].Key < xs[j].Key })
	return xs
}

var (
	treeOnce sync.Once
	treeDir  string
)

// sharedTree builds the test tree once per process (in a directory that
// outlives single tests).
func sharedTree(t *testing.T) string {
	treeOnce.Do(func() {
		dir, err := os.MkdirTemp("", "squashfs-reader-tree")
		if err != nil {
			t.Fatal(err)
		}
		tb := &tempTB{TB: t, dir: dir}
		treeDir = makeTree(tb, treeOptsHere())
	})
	if treeDir == "" {
		t.Fatal("building the test tree failed")
	}
	return treeDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if treeDir != "" {
		os.RemoveAll(filepath.Dir(filepath.Dir(treeDir)))
	}
	os.Exit(code)
}

// tempTB makes TempDir return a directory that outlives the test.
type tempTB struct {
	testing.TB
	dir string
	n   int
}

func (tb *tempTB) TempDir() string {
	tb.n++
	d := filepath.Join(tb.dir, fmt.Sprint(tb.n))
	if err := os.MkdirAll(d, 0o755); err != nil {
		tb.Fatal(err)
	}
	return d
}

func TestReadMksquashfs(t *testing.T) {
	src := sharedTree(t)
	base := compareOpts{xattrs: true, hardLinks: true, dirNlink: true, owners: true, mtimes: true, dirsMtimes: true, inodeNums: true}
	noX := base
	noX.xattrs = false
	for _, tc := range []struct {
		name string
		args []string
		o    compareOpts
	}{
		{"gzip", []string{"-comp", "gzip"}, base},
		{"xz-4k", []string{"-comp", "xz", "-b", "4096"}, base},
		{"lzma", []string{"-comp", "lzma"}, base},
		{"lz4hc", []string{"-comp", "lz4", "-Xhc"}, base},
		{"zstd-1M", []string{"-comp", "zstd", "-b", "1M"}, base},
		{"gzip-nofrag-noxattr-noexport", []string{"-comp", "gzip", "-no-fragments", "-no-xattrs", "-no-exports"}, noX},
		{"zstd-exports-always-frag", []string{"-comp", "zstd", "-exports", "-always-use-fragments", "-b", "4096"}, base},
		{"uncompressed", []string{"-noI", "-noD", "-noF", "-noX", "-noId"}, base},
		{"gzip-opts", []string{"-comp", "gzip", "-Xcompression-level", "1", "-Xwindow-size", "12"}, base},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			img := mkImage(t, src, "mksquashfs", tc.args...)
			r := openImage(t, img)
			compareTree(t, src, r, tc.o)
			checkExportTable(t, r)
		})
	}
}

func TestReadGensquashfs(t *testing.T) {
	src := sharedTree(t)
	o := compareOpts{xattrs: true, owners: true, mtimes: true, noEmptyXattrs: true}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"gzip", []string{"-c", "gzip"}},
		{"xz", []string{"-c", "xz"}},
		{"lzma", []string{"-c", "lzma"}},
		{"lz4", []string{"-c", "lz4"}},
		{"zstd-exportable", []string{"-c", "zstd", "-e", "-b", "1M"}},
		{"zstd-notail", []string{"-c", "zstd", "-T"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			img := mkImage(t, src, "gensquashfs", tc.args...)
			r := openImage(t, img)
			compareTree(t, src, r, o)
			checkExportTable(t, r)
		})
	}
}

// checkExportTable checks that the export table, when present, maps the
// inode number of every entry to its inode reference.
func checkExportTable(t *testing.T, r *Reader) {
	t.Helper()
	if !r.Info().ExportTable {
		if _, err := r.InodeRefByNumber(1); err == nil {
			t.Error("InodeRefByNumber works without an export table")
		}
		return
	}
	root, err := r.Inode(r.RootRef())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	stack := []*Inode{root}
	for len(stack) > 0 {
		dir := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		ents, err := r.ReadDirAll(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			ref, err := r.InodeRefByNumber(e.Ino)
			if err != nil || ref != e.Ref {
				t.Fatalf("%s: InodeRefByNumber(%d) = %s, %v; want %s", e.Name, e.Ino, refString(ref), err, refString(e.Ref))
			}
			n++
			if e.Type == TypeDir {
				in, err := r.EntryInode(dir, e)
				if err != nil {
					t.Fatal(err)
				}
				stack = append(stack, in)
			}
		}
	}
	if n < 10 {
		t.Fatalf("checked only %d export table entries", n)
	}
}

// TestKernelAgrees mounts images with the kernel and checks that the
// reader shows exactly what the kernel shows, inode numbers and link
// counts included.
func TestKernelAgrees(t *testing.T) {
	if !isRoot() {
		t.Skip("mounting needs root")
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		t.Skip("no loop devices")
	}
	src := sharedTree(t)
	all := compareOpts{xattrs: true, hardLinks: true, dirNlink: true, owners: true, mtimes: true, dirsMtimes: true, sameIno: true}
	for _, tc := range []struct {
		tool string
		args []string
	}{
		{"mksquashfs", []string{"-comp", "xz", "-b", "4096"}},
		{"gensquashfs", []string{"-c", "zstd"}},
	} {
		t.Run(tc.tool, func(t *testing.T) {
			img := mkImage(t, src, tc.tool, tc.args...)
			mnt := t.TempDir()
			if out, err := exec.Command("mount", "-o", "loop,ro", "-t", "squashfs", img, mnt).CombinedOutput(); err != nil {
				t.Skipf("mount: %v: %s", err, out)
			}
			t.Cleanup(func() { exec.Command("umount", mnt).Run() })
			compareTree(t, mnt, openImage(t, img), all)
		})
	}
}

func TestFSTest(t *testing.T) {
	src := makeTree(t, treeOpts{special: isRoot()})
	img := mkImage(t, src, "mksquashfs", "-comp", "zstd", "-b", "4096")
	r := openImage(t, img)
	want := []string{"small", "sub/hard2", "bigdir/entry-01000-with-a-longish-name-to-fill-blocks", "link-dir", "sparse"}
	if err := fstest.TestFS(r, want...); err != nil {
		t.Fatal(err)
	}
}

func TestLzoUnsupported(t *testing.T) {
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "f"), []byte("x"), 0o644)
	img := mkImage(t, src, "mksquashfs", "-comp", "lzo")
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, err = Open(f)
	if err == nil || !strings.Contains(err.Error(), "unsupported compressor lzo") {
		t.Fatalf("Open(lzo image) = %v, want unsupported compressor lzo", err)
	}
}

func TestDirIndexLookupAndResume(t *testing.T) {
	src := sharedTree(t)
	img := mkImage(t, src, "mksquashfs", "-comp", "gzip", "-b", "4096")
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// A small metadata budget keeps big listings out of the directory
	// cache, so lookups go through the directory index.
	r, err := OpenOptions(f, Options{MetadataCacheSize: 64 << 10, CacheSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	root, err := r.Inode(r.RootRef())
	if err != nil {
		t.Fatal(err)
	}
	big, err := r.LookupInode(root, "bigdir")
	if err != nil {
		t.Fatal(err)
	}
	if big.Type != TypeDir+rdTypeExtended || big.idxCount < 2 || big.Size-3 <= r.maxCachedListing {
		t.Fatalf("bigdir: type %d, %d index entries, listing %d: want an indexed extended directory bigger than %d", big.Type, big.idxCount, big.Size-3, r.maxCachedListing)
	}
	ents, err := r.ReadDirAll(big)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1200 {
		t.Fatalf("bigdir has %d entries, want 1200", len(ents))
	}
	for i, e := range ents {
		got, err := r.Lookup(big, e.Name)
		if err != nil || got != e {
			t.Fatalf("Lookup(%s) = %+v, %v; want %+v", e.Name, got, err, e)
		}
		in, err := r.EntryInode(big, got)
		if err != nil {
			t.Fatal(err)
		}
		fd, err := r.FileData(in)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 10)
		n, _ := fd.ReadAt(buf, 0)
		if string(buf[:n]) != fmt.Sprint(i) {
			t.Fatalf("%s holds %q, want %q", e.Name, buf[:n], fmt.Sprint(i))
		}
	}
	for _, name := range []string{"a", "entry-00000", "entry-00500-x", "entry-01199-with-a-longish-name-to-fill-blocksz", "zzz"} {
		if _, err := r.Lookup(big, name); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Lookup(%q) = %v, want not exist", name, err)
		}
	}
	// Streaming with resumable positions: read in runs of 7, reopening
	// at each position.
	var got []DirEntry
	var pos DirPos
	for {
		d, err := r.OpenDirAt(big, pos)
		if err != nil {
			t.Fatal(err)
		}
		done := false
		for range 7 {
			e, err := d.Next()
			if err == io.EOF {
				done = true
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, e)
		}
		pos = d.Pos()
		if pos.Index != uint64(len(got)) {
			t.Fatalf("Pos().Index = %d after %d entries", pos.Index, len(got))
		}
		if done {
			break
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(ents) {
		t.Fatalf("resumed listing differs from the full one")
	}
}

func TestConcurrentReads(t *testing.T) {
	src := sharedTree(t)
	img := mkImage(t, src, "mksquashfs", "-comp", "zstd", "-b", "4096")
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// A cache far smaller than the data forces evictions while readers
	// race on shared blocks and fragments.
	r, err := OpenOptions(f, Options{CacheSize: 32 << 10, MetadataCacheSize: 32 << 10})
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"text300k", "random200k", "dup1", "sub/dup2", "sparse", "small", "block4097", "hard1"}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 8 {
		wg.Go(func() {
			for i := range 4 {
				name := names[(g+i)%len(names)]
				want, _ := os.ReadFile(filepath.Join(src, name))
				got, err := fs.ReadFile(r, name)
				if err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(got, want) {
					errs <- fmt.Errorf("%s: content differs", name)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := r.data.Len(); n == 0 || r.data.Used() > r.data.Capacity() {
		t.Errorf("data cache holds %d entries, %d bytes of %d", n, r.data.Used(), r.data.Capacity())
	}
}
