package erofs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/closurefs/closurefs/image"
)

// TestReadOwnImages writes the test tree with this package's Writer and
// reads it back with the Reader, comparing with the kernel's view of the
// same image (or with the source when mounting is impossible).
func TestReadOwnImages(t *testing.T) {
	src := rdTestTree(t)
	tree, err := image.FromDir(src, image.Options{KeepMtime: true, KeepHardLinks: true, Xattrs: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []Options{
		{},
		{Compressor: "lz4hc", Ztailpacking: true},
		{Compressor: "lz4", PclusterSize: 65536, FullIndexes: true},
		{Compressor: "zstd", PclusterSize: 16384, Ztailpacking: true},
		{Compressor: "deflate"},
	} {
		t.Run(fmt.Sprintf("%s-C%d-ztail=%v-full=%v", o.Compressor, o.PclusterSize, o.Ztailpacking, o.FullIndexes), func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "own.erofs")
			f, err := os.Create(img)
			if err != nil {
				t.Fatal(err)
			}
			o.ForceUID, o.ForceGID = -1, -1
			o.Jobs = 2
			if err := Write(context.Background(), f, tree, o); err != nil {
				f.Close()
				t.Fatalf("writer: %v", err)
			}
			f.Close()
			rd := rdOpenImage(t, img)
			ref, full := rdMountImage(t, img), true
			if ref == "" {
				ref, full = src, false
			}
			if n := rdCompareWith(t, rd, ref, full, true); n < 700 {
				t.Errorf("compared only %d entries", n)
			}
		})
	}
}
