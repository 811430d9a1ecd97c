package erofs

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/closurefs/closurefs/image"
	"github.com/closurefs/closurefs/internal/treetest"
)

// TestWriteIncompressibleRuns writes files that mix incompressible runs
// (stored as runs of plain blocks after one failed fit) with compressible
// text, at and around pcluster and block boundaries, with big pclusters:
// the kernel and fsck.erofs must read back every file.
func TestWriteIncompressibleRuns(t *testing.T) {
	src := t.TempDir()
	rng := rand.New(rand.NewSource(5))
	random := func(n int) []byte {
		b := make([]byte, n)
		rng.Read(b)
		return b
	}
	for i, parts := range [][]int{
		{300 << 10},                   // random only
		{200<<10 + 123, -50 << 10},    // random, then text
		{-70 << 10, 130<<10 + 1, -10}, // text, random, a short text tail
		{-4096, 65536, -4095, 8191},
		{70<<10 - 1},
	} {
		var b []byte
		for _, n := range parts {
			if n < 0 {
				b = append(b, text(rng, -n)...)
			} else {
				b = append(b, random(n)...)
			}
		}
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("f%d", i)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tree, err := image.FromDir(src, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		set  func(*Options)
	}{
		{"lz4hc-64k", func(o *Options) { o.Compressor, o.PclusterSize = "lz4hc", 65536 }},
		{"lz4hc-64k-ztail", func(o *Options) { o.Compressor, o.PclusterSize, o.Ztailpacking = "lz4hc", 65536, true }},
		{"lz4hc-64k-frags", func(o *Options) { o.Compressor, o.PclusterSize, o.Fragments = "lz4hc", 65536, true }},
		{"zstd-64k", func(o *Options) { o.Compressor, o.PclusterSize = "zstd", 65536 }},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := baseOpts()
			c.set(&o)
			img := writeImage(t, tree, o)
			fsckNewImage(t, img, src, o.Fragments)
			needMount(t)
			treetest.Compare(t, kmount(t, img), src, treetest.Options{MinEntries: 5})
		})
	}
}
