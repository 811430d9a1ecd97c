package erofs

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/closurefs/closurefs/image"
	"github.com/closurefs/closurefs/internal/treetest"
	"golang.org/x/sys/unix"
)

// makeTestTree builds a small tree covering the layouts: empty, tiny,
// block-sized and multi-block files (compressible and random), symlinks
// (short and long), nested and large directories, hard links and
// duplicates, a long name and odd modes.
func makeTestTree(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "src")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	write := func(p string, data []byte, mode os.FileMode) {
		t.Helper()
		p = filepath.Join(dir, p)
		must(os.MkdirAll(filepath.Dir(p), 0o755))
		must(os.WriteFile(p, data, mode))
		must(os.Chmod(p, mode))
	}
	rnd := func(n int) []byte {
		b := make([]byte, n)
		rand.Read(b)
		return b
	}
	text := func(n int) []byte {
		var b bytes.Buffer
		for i := 0; b.Len() < n; i++ {
			fmt.Fprintf(&b, "line %d: the quick brown fox jumps over the lazy dog %d\n", i, i*i%977)
		}
		return b.Bytes()[:n]
	}
	must(os.MkdirAll(dir, 0o755))
	write("empty", nil, 0o644)
	write("tiny", []byte("hello\n"), 0o644)
	write("exec.sh", []byte("#!/bin/sh\necho hi\n"), 0o755)
	write("block", text(4096), 0o644)
	write("text-100k", text(100_000), 0o644)
	write("text-1m", text(1_300_000), 0o444)
	write("random-10k", rnd(10_000), 0o644)
	write("random-200k", rnd(200_000), 0o600)
	write("mixed", append(text(50_000), rnd(30_000)...), 0o644)
	write("zeros", make([]byte, 3<<20), 0o644)
	write("sub/dir/deep/file", text(5000), 0o644)
	write("sub/dup1", text(70_000), 0o644)
	write("sub/dup2", text(70_000), 0o644)
	write("setuid", []byte("x"), 0o4755)
	write(strings.Repeat("n", 255), []byte("long name"), 0o644)
	for i := 0; i < 300; i++ {
		write(fmt.Sprintf("big-dir/entry-with-a-longish-name-%04d", i), text(i*37), 0o644)
	}
	must(os.Symlink("tiny", filepath.Join(dir, "link")))
	must(os.Symlink(strings.Repeat("a/", 1500)+"x", filepath.Join(dir, "longlink")))
	must(os.Link(filepath.Join(dir, "text-100k"), filepath.Join(dir, "sub/hardlink")))
	must(os.MkdirAll(filepath.Join(dir, "emptydir"), 0o700))
	must(syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644))
	return dir
}

func needMount(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("kernel mount test needs root")
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		t.Skip("no loop devices")
	}
}

// kmount mounts img read-only with the kernel and returns the mount
// point (unmounted at cleanup).
func kmount(t testing.TB, img string) string {
	t.Helper()
	mnt := t.TempDir()
	out, err := exec.Command("mount", "-t", "erofs", "-o", "loop,ro", img, mnt).CombinedOutput()
	if err != nil {
		dm, _ := exec.Command("sh", "-c", "dmesg | tail -5").CombinedOutput()
		t.Fatalf("mount %s: %v\n%s\n%s", img, err, out, dm)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount: %v %s", err, out)
		}
	})
	return mnt
}

func writeImage(t testing.TB, tree *image.Tree, opts Options) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "img.erofs")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if opts.Label == "" {
		opts.Label = DefaultLabel
	}
	if err := Write(context.Background(), f, tree, opts); err != nil {
		t.Fatalf("write: %v", err)
	}
	return img
}

func baseOpts() Options { return Options{ForceUID: -1, ForceGID: -1} }

func TestWriteMount(t *testing.T) {
	needMount(t)
	src := makeTestTree(t)
	type tc struct {
		name string
		opts func(o *Options)
		fsck bool
	}
	cases := []tc{
		{"plain", func(o *Options) {}, true},
		{"plain-1k", func(o *Options) { o.BlockSize = 1024 }, false},
		{"lz4hc", func(o *Options) { o.Compressor = "lz4hc" }, true},
		{"lz4hc-ztail", func(o *Options) { o.Compressor = "lz4hc"; o.Ztailpacking = true }, true},
		{"lz4-full-64k", func(o *Options) { o.Compressor = "lz4"; o.FullIndexes = true; o.PclusterSize = 65536 }, false},
		{"lz4hc-64k-ztail", func(o *Options) { o.Compressor = "lz4hc"; o.PclusterSize = 65536; o.Ztailpacking = true }, false},
		{"zstd", func(o *Options) { o.Compressor = "zstd" }, false},
		{"zstd-64k-ztail", func(o *Options) { o.Compressor = "zstd"; o.PclusterSize = 65536; o.Ztailpacking = true }, false},
		{"deflate-ztail", func(o *Options) { o.Compressor = "deflate"; o.Ztailpacking = true }, false},
		{"deflate-64k", func(o *Options) { o.Compressor = "deflate"; o.PclusterSize = 65536 }, false},
		{"lz4hc-ztail-frags", func(o *Options) { o.Compressor = "lz4hc"; o.Ztailpacking = true; o.Fragments = true }, false},
		{"lz4hc-64k-frags-full", func(o *Options) {
			o.Compressor = "lz4hc"
			o.PclusterSize = 65536
			o.Fragments = true
			o.FullIndexes = true
		}, false},
		{"zstd-frags", func(o *Options) { o.Compressor = "zstd"; o.Fragments = true }, false},
		{"lz4hc-dedupe-64k", func(o *Options) { o.Compressor = "lz4hc"; o.Dedupe = true; o.PclusterSize = 65536 }, false},
		{"deflate-64k-ztail-frags", func(o *Options) {
			o.Compressor = "deflate"
			o.PclusterSize = 65536
			o.Ztailpacking = true
			o.Fragments = true
		}, false},
	}
	for _, keep := range []bool{false, true} {
		tree, err := image.FromDir(src, image.Options{KeepHardLinks: keep})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cases {
			if keep && c.name != "plain" && c.name != "lz4hc-ztail" && c.name != "lz4hc-ztail-frags" {
				continue
			}
			t.Run(fmt.Sprintf("%s-links=%v", c.name, keep), func(t *testing.T) {
				o := baseOpts()
				c.opts(&o)
				img := writeImage(t, tree, o)
				mnt := kmount(t, img)
				treetest.Compare(t, mnt, src, treetest.Options{Nlink: keep, DirNlink: true, MinEntries: 2})
				out, err := exec.Command("blkid", "-p", img).CombinedOutput()
				if err != nil || !strings.Contains(string(out), `TYPE="erofs"`) || !strings.Contains(string(out), `LABEL="nix-store"`) {
					t.Errorf("blkid -p: %v %s", err, out)
				}
				if c.fsck {
					fsckImage(t, img, src)
				}
				fsckNewImage(t, img, src, o.Fragments)
			})
		}
	}
}

// fsckImage runs Debian's fsck.erofs on img and extracts it.
func fsckImage(t testing.TB, img, src string) {
	t.Helper()
	if _, err := exec.LookPath("fsck.erofs"); err != nil {
		t.Log("fsck.erofs not installed")
		return
	}
	dst := filepath.Join(t.TempDir(), "x")
	out, err := exec.Command("fsck.erofs", "--extract="+dst, img).CombinedOutput()
	if err != nil {
		t.Errorf("fsck.erofs: %v\n%s", err, out)
		return
	}
	treetest.Compare(t, dst, src, treetest.Options{DirNlink: true, MinEntries: 2})
}

// fsckNewImage checks img with a newer fsck.erofs (erofs-utils >= 1.8,
// which knows zstd, deflate, fragments and dedupe) when one is at hand,
// and compares its extraction with src. Its --extract=DIR fails on any
// image with a packed inode (mkfs.erofs's own too, erofs-utils 1.9.3):
// those are only decompressed and checked.
func fsckNewImage(t testing.TB, img, src string, frags bool) {
	t.Helper()
	bin := newFsck()
	if bin == "" {
		t.Log("no newer fsck.erofs at /tmp/fsck.erofs-new or $EROFS_FSCK_NEW")
		return
	}
	if frags {
		if out, err := exec.Command(bin, "--extract", img).CombinedOutput(); err != nil {
			t.Errorf("%s --extract: %v\n%s", bin, err, out)
		}
		return
	}
	dst := filepath.Join(t.TempDir(), "x")
	if out, err := exec.Command(bin, "--extract="+dst, img).CombinedOutput(); err != nil {
		t.Errorf("%s --extract: %v\n%s", bin, err, out)
		return
	}
	treetest.Compare(t, dst, src, treetest.Options{DirNlink: true, MinEntries: 2})
}

// TestWriteDeterministic checks that -j 1 and -j 2, and a source with
// hard links (an optimised store) versus one without, give identical
// bytes.
func TestWriteDeterministic(t *testing.T) {
	src := makeTestTree(t)
	// A copy of src where the duplicates are separate files, not links.
	plain := filepath.Join(t.TempDir(), "src")
	if out, err := exec.Command("cp", "-a", src, plain).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	os.Remove(filepath.Join(plain, "sub/hardlink"))
	data, _ := os.ReadFile(filepath.Join(src, "text-100k"))
	if err := os.WriteFile(filepath.Join(plain, "sub/hardlink"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, comp := range []string{"", "lz4hc"} {
		var imgs [][]byte
		for i, dir := range []string{src, src, plain} {
			tree, err := image.FromDir(dir, image.Options{})
			if err != nil {
				t.Fatal(err)
			}
			o := baseOpts()
			o.Compressor = comp
			o.Ztailpacking = comp != ""
			o.Fragments = comp != ""
			o.Jobs = 1 + i%2
			b, err := os.ReadFile(writeImage(t, tree, o))
			if err != nil {
				t.Fatal(err)
			}
			imgs = append(imgs, b)
		}
		if !bytes.Equal(imgs[0], imgs[1]) {
			t.Errorf("%q: -j 1 and -j 2 images differ", comp)
		}
		if !bytes.Equal(imgs[0], imgs[2]) {
			t.Errorf("%q: images of linked and unlinked sources differ", comp)
		}
	}
}

// TestWriteRejects checks option errors.
func TestWriteRejects(t *testing.T) {
	for _, o := range []Options{
		{BlockSize: 3000},
		{Compressor: "lzo"},
		{Compressor: "lz4", Level: 5},
		{Compressor: "lz4hc", PclusterSize: 5000},
		{Label: "a label longer than sixteen bytes"},
	} {
		if _, err := NewWriter(nil, o); err == nil {
			t.Errorf("NewWriter(%+v) accepted", o)
		}
	}
}

func BenchmarkWriteLZ4HC(b *testing.B) {
	src := makeTestTree(b)
	tree, err := image.FromDir(src, image.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(tree.Stats.Bytes)
	for b.Loop() {
		o := baseOpts()
		o.Compressor = "lz4hc"
		o.Ztailpacking = true
		f, err := os.CreateTemp(b.TempDir(), "img")
		if err != nil {
			b.Fatal(err)
		}
		if err := Write(context.Background(), f, tree, o); err != nil {
			b.Fatal(err)
		}
		f.Close()
		os.Remove(f.Name())
	}
}

// TestWriteXattrsDevices checks inline xattrs (several name indexes) and
// device nodes through the kernel.
func TestWriteXattrsDevices(t *testing.T) {
	needMount(t)
	src := filepath.Join(t.TempDir(), "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(src, "f")
	if err := os.WriteFile(f, []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"user.one": "1", "user.two": strings.Repeat("v", 300), "trusted.t": "tv"}
	for k, v := range want {
		if err := unix.Lsetxattr(f, k, []byte(v), 0); err != nil {
			t.Skipf("setxattr %s: %v", k, err)
		}
	}
	dev := filepath.Join(src, "null")
	if err := unix.Mknod(dev, unix.S_IFCHR|0o644, int(unix.Mkdev(1, 3))); err != nil {
		t.Fatal(err)
	}
	blk := filepath.Join(src, "blk")
	if err := unix.Mknod(blk, unix.S_IFBLK|0o600, int(unix.Mkdev(259, 70000))); err != nil {
		t.Fatal(err)
	}
	tree, err := image.FromDir(src, image.Options{Xattrs: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, comp := range []string{"", "lz4"} {
		o := baseOpts()
		o.Compressor = comp
		mnt := kmount(t, writeImage(t, tree, o))
		treetest.Compare(t, mnt, src, treetest.Options{DirNlink: true, MinEntries: 2})
		for k, v := range want {
			buf := make([]byte, 1024)
			n, err := unix.Lgetxattr(filepath.Join(mnt, "f"), k, buf)
			if err != nil || string(buf[:n]) != v {
				t.Errorf("%q: xattr %s = %q (%v), want %q", comp, k, buf[:max(n, 0)], err, v)
			}
		}
		for _, d := range []string{"null", "blk"} {
			var a, b unix.Stat_t
			unix.Lstat(filepath.Join(src, d), &a)
			if err := unix.Lstat(filepath.Join(mnt, d), &b); err != nil || a.Rdev != b.Rdev || a.Mode != b.Mode {
				t.Errorf("%s: rdev %x mode %o (%v), want %x %o", d, b.Rdev, b.Mode, err, a.Rdev, a.Mode)
			}
		}
	}
}

// TestWriteBigIndex covers metadata items larger than a block: a file
// whose compact indexes exceed 4 KiB among many small inlined files.
func TestWriteBigIndex(t *testing.T) {
	needMount(t)
	src := filepath.Join(t.TempDir(), "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	for i := 0; b.Len() < 10<<20; i++ {
		fmt.Fprintf(&b, "<p id=%d>entry %d of the big index test</p>\n", i, i*7%1000)
	}
	if err := os.WriteFile(filepath.Join(src, "big.html"), b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 200; i++ {
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("small-%03d", i)), bytes.Repeat([]byte{byte(i)}, 100+i*13), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tree, err := image.FromDir(src, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	o := baseOpts()
	o.Compressor = "lz4hc"
	o.Ztailpacking = true
	treetest.Compare(t, kmount(t, writeImage(t, tree, o)), src, treetest.Options{DirNlink: true, MinEntries: 2})
}

// TestAppendPackTailPadding: a compact pack holding only the nonhead
// lcluster (d0 = 1, no CBLKCNT) of an inline or fragment tail, then
// padding past the file's end, once made appendPack loop forever (the
// padding read as a head); the bench closure hit it at -C65536
// -Eztailpacking.
func TestAppendPackTailPadding(t *testing.T) {
	c := &compressor{blksz: 4096, blkbits: 12, pclusterBlks: 16}
	all := []lcEntry{
		{typ: LclusterHead1, blk: 100},
		{typ: LclusterNonhead, cblkcnt: true, d0: LID0CblkCnt | 2},
		{typ: LclusterHead1, blk: 102},
		{typ: LclusterNonhead, d0: 1, d1: 1},
	}
	done := make(chan []byte, 1)
	go func() { done <- c.appendPack(nil, all, 3, 2, 4, true) }()
	select {
	case out := <-done:
		if len(out) != 8 {
			t.Fatalf("pack of %d bytes, want 8", len(out))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("appendPack did not return")
	}
}

// TestWriteLongRuns writes files of long runs (zeros, a repeated line),
// where one LZ4 match outgrows a pcluster, with each compressor: the
// image is no bigger than mkfs.erofs's of the same files (plus a little),
// and with root the kernel reads it back. An uncompressed image does not
// set the 0padding feature (kernels before 5.3 refuse it), as with
// mkfs.erofs.
func TestWriteLongRuns(t *testing.T) {
	mkfs, err := exec.LookPath("mkfs.erofs")
	if err != nil {
		t.Skip("mkfs.erofs not installed")
	}
	src := filepath.Join(t.TempDir(), "src")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "zeros"), make([]byte, 8<<20), 0o644)
	os.WriteFile(filepath.Join(src, "lines"), bytes.Repeat([]byte("hello world some text\n"), 200000), 0o644)
	tree, err := image.FromDir(src, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, z := range []string{"", "lz4", "lz4hc", "zstd", "deflate"} {
		o := baseOpts()
		o.Compressor = z
		img := writeImage(t, tree, o)
		ref := filepath.Join(t.TempDir(), "ref.erofs")
		args := []string{"-T0", ref, src}
		if z != "" {
			args = append([]string{"-z" + z}, args...)
		}
		if out, err := exec.Command(mkfs, args...).CombinedOutput(); err != nil {
			if z != "" && strings.Contains(string(out), "valid compressor") {
				t.Logf("mkfs.erofs has no %s: %s", z, out)
				continue
			}
			t.Fatalf("mkfs.erofs %v: %v\n%s", args, err, out)
		}
		got, want := fileSize(t, img), fileSize(t, ref)
		t.Logf("-z %q: %d bytes, mkfs.erofs %d", z, got, want)
		if got > want+want/4+16<<10 {
			t.Errorf("-z %q: image of %d bytes, mkfs.erofs makes %d", z, got, want)
		}
		f, err := os.Open(img)
		if err != nil {
			t.Fatal(err)
		}
		rd, err := Open(f)
		if err != nil {
			t.Fatal(err)
		}
		if zeroPad := rd.incompat&FeatureIncompatZeroPadding != 0; zeroPad != (z != "") {
			t.Errorf("-z %q: 0padding feature %v", z, zeroPad)
		}
		f.Close()
		if os.Geteuid() == 0 {
			treetest.Compare(t, kmount(t, img), src, treetest.Options{DirNlink: true, MinEntries: 2})
		}
	}
}

func fileSize(t testing.TB, p string) int64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
