package squashfs

import (
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/closurefs/closurefs/integration/fixture"
)

// BenchmarkReadAll reads every regular file of an mksquashfs image (zstd,
// 128 KiB blocks) of the fixture closure with a cold reader per loop.
// $CLOSUREFS_BENCH_IMAGE names another image to read instead. Compare
// with `unsquashfs -d` of the same image.
func BenchmarkReadAll(b *testing.B) {
	img := os.Getenv("CLOSUREFS_BENCH_IMAGE")
	if img == "" {
		if !haveTool("mksquashfs") {
			b.Skip("mksquashfs not installed")
		}
		fx := fixture.Get(b)
		img = filepath.Join(b.TempDir(), "fixture.sqfs")
		args := append(append([]string{}, fx.Paths...), img, "-noappend", "-quiet", "-no-progress", "-comp", "zstd", "-no-xattrs")
		if out, err := exec.Command("mksquashfs", args...).CombinedOutput(); err != nil {
			b.Fatalf("mksquashfs: %v\n%s", err, out)
		}
	}
	f, err := os.Open(img)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var total int64
	for b.Loop() {
		r, err := Open(f)
		if err != nil {
			b.Fatal(err)
		}
		total = 0
		err = fs.WalkDir(r, ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			fh, err := r.Open(p)
			if err != nil {
				return err
			}
			n, err := io.Copy(io.Discard, fh)
			fh.Close()
			total += n
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(total)
}
