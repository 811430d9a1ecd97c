package erofs

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/fstest"

	"github.com/closurefs/closurefs/image"
	"golang.org/x/sys/unix"
)

// rdMkfsDebian is Debian's mkfs.erofs (1.5 here); rdMkfsNew a newer one built
// from erofs-utils (EROFS_MKFS_NEW, default /tmp/mkfs.erofs-new), used
// for zstd, deflate, fragments and dedupe when present.
func rdMkfsDebian(t testing.TB) string {
	p, err := exec.LookPath("mkfs.erofs")
	if err != nil {
		t.Skip("mkfs.erofs not installed")
	}
	return p
}

func rdMkfsNew(t testing.TB) string {
	p := os.Getenv("EROFS_MKFS_NEW")
	if p == "" {
		p = "/tmp/mkfs.erofs-new"
	}
	if _, err := os.Stat(p); err != nil {
		t.Skipf("no newer mkfs.erofs at %s (set EROFS_MKFS_NEW)", p)
	}
	return p
}

// rdWriteTestTree builds a source tree with the edge cases the reader must
// handle. With fstestSafe, every symlink resolves inside the tree.
func rdWriteTestTree(t testing.TB, dir string, xattrs bool) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	rng := rand.New(rand.NewSource(1))
	rnd := func(n int) []byte { b := make([]byte, n); rng.Read(b); return b }
	text := func(n int) []byte {
		var b bytes.Buffer
		for i := 0; b.Len() < n; i++ {
			fmt.Fprintf(&b, "line %d of some fairly compressible text %d\n", i, i%97)
		}
		return b.Bytes()[:n]
	}
	write := func(name string, data []byte, mode os.FileMode) {
		p := filepath.Join(dir, name)
		must(os.MkdirAll(filepath.Dir(p), 0o755))
		must(os.WriteFile(p, data, mode))
		must(os.Chmod(p, mode))
	}
	write("empty", nil, 0o644)
	write("small.txt", []byte("hello, erofs\n"), 0o644)
	write("exec.sh", []byte("#!/bin/sh\necho hi\n"), 0o755)
	write("setuid", []byte("suid"), 0o4755)
	write("block4096", text(4096), 0o644)
	write("block4097", text(4097), 0o644)
	write("text300k", text(300_000), 0o644)
	write("random100k", rnd(100_000), 0o600)
	mixed := append(text(70_000), rnd(30_000)...)
	mixed = append(mixed, text(50_000)...)
	write("sub/mixed", mixed, 0o644)
	write("sub/deeper/deepest/file", text(12345), 0o444)
	write("zeros1m", make([]byte, 1<<20), 0o644)
	sp, err := os.Create(filepath.Join(dir, "sparse8m"))
	must(err)
	_, err = sp.WriteAt(text(5000), 3<<20)
	must(err)
	must(sp.Truncate(8 << 20))
	must(sp.Close())
	write("dup/a", text(200_000), 0o644)
	write("dup/b", text(200_000), 0o644)
	write(strings.Repeat("n", 200), []byte("long name"), 0o644)
	for i := 0; i < 700; i++ {
		write(fmt.Sprintf("many/entry-%04d-%s", i, strings.Repeat("x", i%40)), []byte(fmt.Sprint(i)), 0o644)
	}
	must(os.Mkdir(filepath.Join(dir, "emptydir"), 0o700))
	must(os.Mkdir(filepath.Join(dir, "sticky"), 0o1777))
	must(os.Symlink("small.txt", filepath.Join(dir, "link")))
	must(os.Symlink("../small.txt", filepath.Join(dir, "sub/uplink")))
	must(os.Symlink("deeper/deepest", filepath.Join(dir, "sub/dirlink")))
	must(os.Symlink(strings.Repeat("t/", 500)+"x", filepath.Join(dir, "sub/longlink-dangling")))
	must(os.Link(filepath.Join(dir, "small.txt"), filepath.Join(dir, "hardlink")))
	must(syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644))
	if os.Geteuid() == 0 {
		must(syscall.Mknod(filepath.Join(dir, "chardev"), syscall.S_IFCHR|0o600, int(unix.Mkdev(1, 3))))
		must(syscall.Mknod(filepath.Join(dir, "blkdev"), syscall.S_IFBLK|0o600, int(unix.Mkdev(259, 70000))))
	}
	if xattrs {
		for _, f := range []string{"small.txt", "sub/mixed", "emptydir", "random100k"} {
			p := filepath.Join(dir, f)
			if err := unix.Lsetxattr(p, "user.test", []byte("value of "+f), 0); err != nil {
				t.Skipf("xattrs unsupported here: %v", err)
			}
			must(unix.Lsetxattr(p, "user.shared", []byte("same everywhere"), 0))
			must(unix.Lsetxattr(p, "trusted.overlay.opaque", []byte("y"), 0))
		}
		must(unix.Lsetxattr(filepath.Join(dir, "exec.sh"), "security.capability", []byte{1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 0))
	}
	// Fixed mtimes so that images from the same tree agree.
	must(filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		must(err)
		ts := []unix.Timespec{{Sec: 1700000000}, {Sec: 1700000000 + int64(len(p))}}
		return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
	}))
}

var (
	rdTreeOnce sync.Once
	rdTreeDir  string
	rdTreeErr  error
)

// rdTestTree returns a shared source tree (built once per process).
func rdTestTree(t testing.TB) string {
	rdTreeOnce.Do(func() {
		rdTreeDir, rdTreeErr = os.MkdirTemp("", "erofs-reader-tree-")
		if rdTreeErr == nil {
			rdWriteTestTree(t, filepath.Join(rdTreeDir, "src"), true)
		}
	})
	if rdTreeErr != nil {
		t.Fatal(rdTreeErr)
	}
	return filepath.Join(rdTreeDir, "src")
}

func TestMain(m *testing.M) {
	code := m.Run()
	if rdTreeDir != "" {
		os.RemoveAll(rdTreeDir)
	}
	os.Exit(code)
}

// rdMkfs runs bin with args on src and returns the image path.
func rdMkfs(t testing.TB, bin string, src string, args ...string) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "img.erofs")
	a := append(append([]string{"-T0", "-d0"}, args...), img, src)
	out, err := exec.Command(bin, a...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", bin, strings.Join(a, " "), err, out[max(0, len(out)-2000):])
	}
	return img
}

func rdOpenImage(t testing.TB, img string) *Reader {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	rd, err := Open(f)
	if err != nil {
		t.Fatalf("Open %s: %v", img, err)
	}
	return rd
}

// rdMountImage mounts img read-only with the kernel and returns the mount
// point, or "" when mounting is impossible here.
func rdMountImage(t testing.TB, img string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		return ""
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "erofs", "-o", "ro,loop", img, mnt).CombinedOutput(); err != nil {
		t.Logf("kernel mount unavailable (%v: %s); comparing with the source only", err, out)
		return ""
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	return mnt
}

type rdEntryMeta struct {
	ino         uint64
	mode        fs.FileMode
	size        int64
	nlink       uint32
	uid, gid    uint32
	mtime       int64
	rdev        uint64
	target      string
	digest      [32]byte
	xattrs      string
	hasChildren []string
}

func rdOSMeta(t testing.TB, root, rel string, withXattrs bool) rdEntryMeta {
	p := filepath.Join(root, rel)
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	m := rdEntryMeta{ino: st.Ino, mode: fi.Mode(), nlink: uint32(st.Nlink), uid: st.Uid, gid: st.Gid, mtime: st.Mtim.Sec}
	switch {
	case fi.Mode().IsRegular():
		m.size = fi.Size()
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		m.digest = sha256.Sum256(b)
	case fi.Mode()&fs.ModeSymlink != 0:
		m.size = fi.Size()
		m.target, _ = os.Readlink(p)
	case fi.Mode()&fs.ModeDevice != 0:
		m.rdev = st.Rdev
	case fi.IsDir():
		es, _ := os.ReadDir(p)
		for _, e := range es {
			m.hasChildren = append(m.hasChildren, e.Name())
		}
	}
	if withXattrs {
		xs := rdOSXattrs(t, p)
		m.xattrs = fmt.Sprint(xs)
	}
	return m
}

func rdOSXattrs(t testing.TB, p string) []image.Xattr {
	sz, err := unix.Llistxattr(p, nil)
	if err != nil || sz == 0 {
		return nil
	}
	buf := make([]byte, sz)
	sz, _ = unix.Llistxattr(p, buf)
	var xs []image.Xattr
	for _, k := range strings.Split(string(buf[:sz]), "\x00") {
		if k == "" {
			continue
		}
		vs, _ := unix.Lgetxattr(p, k, nil)
		v := make([]byte, vs)
		vs, _ = unix.Lgetxattr(p, k, v)
		xs = append(xs, image.Xattr{Key: k, Value: v[:vs]})
	}
	sort.Slice(xs, func(i, j int) bool { return xs[i].Key < xs[j].Key })
	return xs
}

func rdImageMeta(t testing.TB, rd *Reader, rel string, withXattrs bool) rdEntryMeta {
	name := filepath.ToSlash(rel)
	if name == "" {
		name = "."
	}
	fi, err := rd.Lstat(name)
	if err != nil {
		t.Fatalf("Lstat %s: %v", name, err)
	}
	ino, ok := image.InodeOf(fi)
	if !ok {
		t.Fatalf("%s: Sys() is %T", name, fi.Sys())
	}
	m := rdEntryMeta{ino: ino.Ino, mode: fi.Mode(), nlink: ino.Nlink, uid: ino.UID, gid: ino.GID, mtime: ino.Mtime.Unix(), rdev: ino.Rdev}
	switch {
	case fi.Mode().IsRegular():
		m.size = fi.Size()
		f, err := rd.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		if _, err := io.Copy(h, f.(io.Reader)); err != nil {
			t.Fatalf("read %s: %v", name, err)
		}
		f.Close()
		copy(m.digest[:], h.Sum(nil))
	case fi.Mode()&fs.ModeSymlink != 0:
		m.size = fi.Size()
		if m.target, err = rd.ReadLink(name); err != nil {
			t.Fatal(err)
		}
	case fi.IsDir():
		es, err := rd.ReadDir(name)
		if err != nil {
			t.Fatalf("ReadDir %s: %v", name, err)
		}
		for _, e := range es {
			m.hasChildren = append(m.hasChildren, e.Name())
		}
	}
	if withXattrs {
		xs, err := rd.Xattrs(name)
		if err != nil {
			t.Fatalf("Xattrs %s: %v", name, err)
		}
		m.xattrs = fmt.Sprint(xs)
	}
	return m
}

// rdCompareWith walks ref (the kernel mount, or the source) and checks that
// rd shows the same tree. With full, it compares every metadata field;
// otherwise types, permissions, sizes, contents, targets and nlink.
func rdCompareWith(t *testing.T, rd *Reader, ref string, full, withXattrs bool) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(ref, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(ref, p)
		if rel == "." {
			rel = ""
		}
		want := rdOSMeta(t, ref, rel, withXattrs)
		got := rdImageMeta(t, rd, rel, withXattrs)
		if !full {
			want.ino, got.ino = 0, 0
			want.uid, got.uid, want.gid, got.gid, want.mtime, got.mtime = 0, 0, 0, 0, 0, 0
			if want.mode.IsDir() {
				want.nlink, got.nlink = 0, 0
			}
		}
		if fmt.Sprint(want) != fmt.Sprint(got) {
			t.Errorf("%s:\nimage %+v\nwant  %+v", rel, got, want)
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

type rdImageCase struct {
	name  string
	newer bool // needs the newer mkfs.erofs
	args  []string
	algs  []string
	feats []string
}

var rdImageCases = []rdImageCase{
	{name: "plain", args: []string{"-x1"}},
	{name: "lz4hc", args: []string{"-zlz4hc", "-x1"}, algs: []string{"lz4"}},
	{name: "lz4hc-ztail", args: []string{"-zlz4hc", "-Eztailpacking"}, feats: []string{"ztailpacking"}},
	{name: "lz4hc-bigpcluster", args: []string{"-zlz4hc", "-C65536"}, feats: []string{"compr_cfgs,big_pcluster"}},
	{name: "lz4-bigpcluster-ztail", args: []string{"-zlz4", "-C16384", "-Eztailpacking"}},
	{name: "lz4-legacy-index", args: []string{"-zlz4", "-Elegacy-compress"}},
	{name: "chunked", args: []string{"--chunksize=8192"}, feats: []string{"chunked_file"}},
	{name: "chunked-block-map", args: []string{"--chunksize=4096"}, feats: []string{"chunked_file"}},
	{name: "noinline", args: []string{"-Enoinline_data"}},
	{name: "zstd", newer: true, args: []string{"-zzstd", "-C65536"}, algs: []string{"zstd"}},
	{name: "lzma-bigpcluster-ztail", newer: true, args: []string{"-zlzma,level=6", "-C65536", "-Eztailpacking"}, algs: []string{"lzma"}},
	{name: "deflate", newer: true, args: []string{"-zdeflate"}, algs: []string{"deflate"}},
	{name: "lz4hc-all-fragments-dedupe", newer: true, args: []string{"-zlz4hc", "-Eall-fragments", "-Ededupe", "-C32768"}},
	{name: "lz4-dedupe", newer: true, args: []string{"-zlz4", "-Ededupe", "-C65536"}},
	{name: "zstd-lz4-compressed-dirs", newer: true, args: []string{"-zzstd:lz4hc", "--zD=1", "-Eztailpacking"}},
	{name: "microvm", newer: true, args: []string{"-zlz4hc", "-Eztailpacking", "-Efragments", "--all-root", "-Lnix-store"}, feats: []string{"fragments,dedupe"}},
	{name: "xattr-prefixes-filter", newer: true, args: []string{"-x1", "-Exattr-name-filter", "--xattr-prefix=user.sh", "--xattr-prefix=trusted.overlay."}, feats: []string{"xattr_prefixes"}},
	{name: "48bit-lz4hc-ztail-fragments", newer: true, args: []string{"-zlz4hc", "-E48bit", "-Eztailpacking", "-Efragments"}, feats: []string{"48bit"}},
	{name: "48bit-zstd-dedupe", newer: true, args: []string{"-zzstd", "-E48bit", "-Ededupe", "-C65536"}, feats: []string{"48bit"}},
	{name: "blocksize-1k", newer: true, args: []string{"-b1024", "-zlz4hc", "-Eztailpacking"}},
}

// TestReadMkfsImages reads images made by mkfs.erofs of the test tree and
// compares them with the kernel's view of the same image (or the source).
func TestReadMkfsImages(t *testing.T) {
	src := rdTestTree(t)
	for _, c := range rdImageCases {
		t.Run(c.name, func(t *testing.T) {
			bin := rdMkfsDebian(t)
			if c.newer {
				bin = rdMkfsNew(t)
			}
			img := rdMkfs(t, bin, src, c.args...)
			rd := rdOpenImage(t, img)
			inf := rd.Info()
			for _, a := range c.algs {
				if !strings.Contains(strings.Join(inf.Algorithms, ","), a) {
					t.Errorf("Info algorithms %v lack %s", inf.Algorithms, a)
				}
			}
			for _, f := range c.feats {
				if !strings.Contains(strings.Join(inf.Features, " "), f) {
					t.Errorf("Info features %v lack %s", inf.Features, f)
				}
			}
			ref, full := rdMountImage(t, img), true
			if ref == "" {
				ref, full = src, false
			}
			n := rdCompareWith(t, rd, ref, full, true)
			if n < 700 {
				t.Errorf("compared only %d entries", n)
			}
		})
	}
}

// TestFSConformance runs testing/fstest on an lz4hc image of a tree whose
// symlinks all resolve inside it.
func TestFSConformance(t *testing.T) {
	bin := rdMkfsDebian(t)
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "a"), bytes.Repeat([]byte("abc"), 5000), 0o644); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(src, "d/e"), 0o755)
	os.WriteFile(filepath.Join(src, "d/e/f"), []byte("f"), 0o644)
	os.Symlink("../a", filepath.Join(src, "d/link"))
	for i := 0; i < 40; i++ {
		os.WriteFile(filepath.Join(src, "d", fmt.Sprintf("file%03d", i)), []byte(strings.Repeat("z", i*37)), 0o644)
	}
	for _, args := range [][]string{{"-zlz4hc", "-Eztailpacking"}, nil} {
		img := rdMkfs(t, bin, src, args...)
		rd := rdOpenImage(t, img)
		if err := fstest.TestFS(rd, "a", "d/e/f", "d/link", "d/file039"); err != nil {
			t.Errorf("%v: %v", args, err)
		}
	}
}

// TestConcurrentReads reads all files of one image from several
// goroutines through the shared pcluster cache.
func TestConcurrentReads(t *testing.T) {
	src := rdTestTree(t)
	img := rdMkfs(t, rdMkfsDebian(t), src, "-zlz4hc", "-C65536")
	f, _ := os.Open(img)
	defer f.Close()
	rd, err := OpenOptions(f, ReaderOptions{CacheBytes: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join(src, "sub/mixed"))
	if err != nil {
		t.Fatal(err)
	}
	fl, err := rd.Open("sub/mixed")
	if err != nil {
		t.Fatal(err)
	}
	ra := fl.(io.ReaderAt)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(g)))
			buf := make([]byte, 9000)
			for i := 0; i < 40; i++ {
				off := rng.Int63n(int64(len(want)))
				n, err := ra.ReadAt(buf, off)
				if err != nil && err != io.EOF {
					errs <- err
					return
				}
				if !bytes.Equal(buf[:n], want[off:off+int64(n)]) {
					errs <- fmt.Errorf("goroutine %d: data at %d differs", g, off)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestLZMAInfo checks the minimum kernel of a MicroLZMA image.
func TestLZMAInfo(t *testing.T) {
	src := t.TempDir()
	want := bytes.Repeat([]byte("lzma data "), 10000)
	os.WriteFile(filepath.Join(src, "f"), want, 0o644)
	img := rdMkfs(t, rdMkfsNew(t), src, "-zlzma")
	rd := rdOpenImage(t, img)
	got, err := fs.ReadFile(rd, "f")
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("reading an lzma file: %v", err)
	}
	if inf := rd.Info(); inf.MinKernel != "5.16" || strings.Join(inf.Algorithms, ",") != "lzma" {
		t.Errorf("Info %+v, want lzma and min kernel 5.16", inf)
	}
}

func TestInfo(t *testing.T) {
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "f"), bytes.Repeat([]byte("x"), 10000), 0o644)
	img := rdMkfs(t, rdMkfsDebian(t), src, "-zlz4hc", "-Eztailpacking", "-U6ba7b810-9dad-11d1-80b4-00c04fd430c8")
	inf := rdOpenImage(t, img).Info()
	if inf.UUID != "6ba7b810-9dad-11d1-80b4-00c04fd430c8" || inf.BlockSize != 4096 || inf.Format != "erofs" {
		t.Errorf("Info = %+v", inf)
	}
	if inf.MinKernel != "5.17" || inf.Inodes != 2 {
		t.Errorf("MinKernel %s (%s), inodes %d; want 5.17, 2", inf.MinKernel, inf.MinKernelWhy, inf.Inodes)
	}
	fi, _ := os.Stat(img)
	if inf.ImageBytes != fi.Size() {
		t.Errorf("ImageBytes %d, file has %d", inf.ImageBytes, fi.Size())
	}
	t.Run("newer", func(t *testing.T) {
		img := rdMkfs(t, rdMkfsNew(t), src, "-zzstd", "-Lmylabel")
		inf := rdOpenImage(t, img).Info()
		if inf.Label != "mylabel" || inf.MinKernel != "6.10" || strings.Join(inf.Algorithms, ",") != "zstd" {
			t.Errorf("Info = %+v", inf)
		}
	})
}

func TestNotErofs(t *testing.T) {
	_, err := Open(bytes.NewReader(make([]byte, 8192)))
	if err == nil || !strings.Contains(err.Error(), "not an erofs image") {
		t.Fatalf("Open(zeros) = %v", err)
	}
	_, err = Open(bytes.NewReader(make([]byte, 100)))
	if err == nil || errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "superblock") {
		t.Fatalf("Open(short) = %v", err)
	}
}

// TestConcurrentWalks reads every file of a fragments image from four
// goroutines at once through a small shared cache (the packed inode and
// its pclusters are shared between files) and compares with the source.
func TestConcurrentWalks(t *testing.T) {
	src := rdTestTree(t)
	img := rdMkfs(t, rdMkfsNew(t), src, "-zlz4hc", "-Eztailpacking", "-Efragments", "-C16384")
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rd, err := OpenOptions(f, ReaderOptions{CacheBytes: 128 << 10})
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			rel, _ := filepath.Rel(src, p)
			files = append(files, rel)
		}
		return nil
	})
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := range files {
				name := files[(i*7+g*13)%len(files)]
				want, err := os.ReadFile(filepath.Join(src, name))
				if err != nil {
					errs <- err
					return
				}
				got, err := fs.ReadFile(rd, name)
				if err != nil || !bytes.Equal(got, want) {
					errs <- fmt.Errorf("%s: %v (%d bytes, want %d)", name, err, len(got), len(want))
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
