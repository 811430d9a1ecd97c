package squashfs_test

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/closurefs/closurefs/image"
	"github.com/closurefs/closurefs/image/squashfs"
	"github.com/closurefs/closurefs/integration/fixture"
	"github.com/closurefs/closurefs/internal/treetest"
)

// TestWriterFixture writes the shared fixture closure (a real Nix closure)
// from the plain store and from the optimised (hard-linked) store: the
// images are byte-identical, the kernel mounts them, every store path
// equals its source, and sqfsdiff finds no difference from gensquashfs's
// image of the same store paths.
func TestWriterFixture(t *testing.T) {
	f := fixture.Get(t)
	opt := make([]string, len(f.Paths))
	for i, p := range f.Paths {
		opt[i] = f.Physical(p)
	}
	plainTree, err := image.FromStorePaths(f.Paths, image.Options{AllRoot: true})
	if err != nil {
		t.Fatal(err)
	}
	optTree, err := image.FromStorePaths(opt, image.Options{AllRoot: true})
	if err != nil {
		t.Fatal(err)
	}
	// A fast compressor keeps the test short: layout and content do not
	// depend on it.
	fast, err := squashfs.ParseCompressor("lz4")
	if err != nil {
		t.Fatal(err)
	}
	img := writeImage(t, plainTree, squashfs.WriterOptions{Jobs: 2, Codec: fast})
	img2 := writeImage(t, optTree, squashfs.WriterOptions{Jobs: 1, Codec: fast})
	if !bytes.Equal(mustRead(t, img), mustRead(t, img2)) {
		t.Error("images of the plain store (-j 2) and the optimised store (-j 1) differ")
	}
	mnt := mountImage(t, img)
	for _, p := range f.Paths {
		base := filepath.Base(p)
		compareStorePath(t, p, filepath.Join(mnt, base))
	}
	if _, err := exec.LookPath("gensquashfs"); err != nil {
		return
	}
	// gensquashfs -D packs one directory: stage the closure's paths.
	stage := t.TempDir()
	for _, p := range f.Paths {
		if out, err := exec.Command("cp", "-a", p, stage).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v\n%s", err, out)
		}
	}
	g := filepath.Join(t.TempDir(), "g.sqfs")
	runTool(t, "gensquashfs", "-q", "-c", "lz4", "--all-root", "-D", stage, g)
	runTool(t, "sqfsdiff", "-a", g, "-b", img)
}

// compareStorePath compares one store path (a directory, file or symlink)
// with its copy in the mount.
func compareStorePath(t *testing.T, src, got string) {
	t.Helper()
	fi, err := lstat(src)
	if err != nil {
		t.Fatal(err)
	}
	if fi.IsDir() {
		treetest.Compare(t, got, src, treetest.Options{RootOwned: true, NlinkOne: true})
		return
	}
	treetest.Compare(t, filepath.Dir(got), filepath.Dir(src), treetest.Options{RootOwned: true, NlinkOne: true, Only: filepath.Base(src)})
}
