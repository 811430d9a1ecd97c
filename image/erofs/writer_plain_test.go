package erofs

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/closurefs/closurefs/image"
)

// plainTestTree writes files whose sizes fall on and around the block
// size, the inline limit, the writer's segment size and its batch
// bounds, with duplicates: the layouts of an uncompressed image.
func plainTestTree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	rng := rand.New(rand.NewSource(7))
	write := func(name string, n int) {
		t.Helper()
		b := make([]byte, n)
		rng.Read(b)
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i, n := range []int{
		0, 1, 4096 - CompactInodeSize, 4096 - CompactInodeSize + 1, 4095, 4096, 4097,
		3*4096 + 4000, // a tail that does not fit inline: a padded block
		plainSeg - 1, plainSeg, plainSeg + 1, 2*plainSeg + 4096 + 17,
		plainBatch - 4096, plainBatch + 100,
	} {
		write(fmt.Sprintf("sizes/f%02d-%d", i, n), n)
	}
	// More small files than a batch holds.
	for i := range plainBatchFiles + 50 {
		write(fmt.Sprintf("many/%03d", i), rng.Intn(9000))
	}
	// Duplicates: inline (small), in a padded block (16288, and 4070,
	// which does not fit with an inode) and with full blocks.
	for _, src := range []string{"sizes/f07-16288", "sizes/f01-1", "sizes/f02-4064", "many/000"} {
		data, err := os.ReadFile(filepath.Join(dir, src))
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"a", "b"} {
			p := filepath.Join(dir, "dup", filepath.Base(src)+name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, name := range []string{"dup/4070a", "dup/4070b", "dup/4070c"} {
		b := bytes.Repeat([]byte{'x'}, 4070)
		if name == "dup/4070c" {
			b[0] = 'y' // same size, other content
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// writePlain writes src as an uncompressed image with jobs workers and
// returns the image bytes.
func writePlain(t *testing.T, src string, jobs int, blksz int) []byte {
	t.Helper()
	return writePlainTree(t, src, jobs, blksz, image.Options{})
}

func writePlainTree(t *testing.T, src string, jobs int, blksz int, topts image.Options) []byte {
	t.Helper()
	tree, err := image.FromDir(src, topts)
	if err != nil {
		t.Fatal(err)
	}
	o := baseOpts()
	o.Jobs, o.BlockSize = jobs, blksz
	b, err := os.ReadFile(writeImage(t, tree, o))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestWritePlainParallel checks that the parallel writer of uncompressed
// data gives the same image for any number of workers, that the image
// holds every file's bytes (read back with the Reader; the kernel and
// fsck.erofs check the same layouts in TestWriteMount), and that the
// UUID follows the content.
func TestWritePlainParallel(t *testing.T) {
	src := plainTestTree(t)
	for _, blksz := range []int{4096, 1024} {
		t.Run(fmt.Sprint(blksz), func(t *testing.T) {
			want := writePlain(t, src, 1, blksz)
			for _, jobs := range []int{2, 3} {
				if got := writePlain(t, src, jobs, blksz); !bytes.Equal(got, want) {
					t.Fatalf("-j %d image differs from -j 1", jobs)
				}
			}
			// Searching only the files DedupeMin leaves gives the same
			// image.
			dm := DedupeMin(Options{BlockSize: blksz})
			if got := writePlainTree(t, src, 2, blksz, image.Options{DedupeMin: dm}); !bytes.Equal(got, want) {
				t.Fatalf("image with DedupeMin %d differs", dm)
			}
			if nodup := writePlainTree(t, src, 2, blksz, image.Options{DedupeMin: 1 << 30}); len(nodup) <= len(want) {
				t.Errorf("image without deduplication: %d bytes, not more than %d", len(nodup), len(want))
			}
			rd, err := Open(bytes.NewReader(want))
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
				if err != nil || !d.Type().IsRegular() {
					return err
				}
				rel, _ := filepath.Rel(src, p)
				a, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				b, err := fs.ReadFile(rd, rel)
				if err != nil {
					return err
				}
				if !bytes.Equal(a, b) {
					t.Errorf("%s: image content differs from the source", rel)
				}
				n++
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if n < plainBatchFiles+50 {
				t.Errorf("compared only %d files", n)
			}
		})
	}
}

// TestWritePlainUUID flips one byte of a file in the middle of a big
// file, in a tail stored in a padded block and in an inline tail: each
// must change the content-derived UUID.
func TestWritePlainUUID(t *testing.T) {
	src := plainTestTree(t)
	uuid := func() [16]byte {
		img := writePlain(t, src, 2, 4096)
		sb, err := DecodeSuperblock(img[SuperOffset:])
		if err != nil {
			t.Fatal(err)
		}
		return sb.UUID
	}
	base := uuid()
	for _, c := range []struct {
		name string
		off  int64
	}{
		{"sizes/f11-2101265", plainSeg + 12345},
		{"sizes/f07-16288", 3*4096 + 10}, // padded tail block
		{"sizes/f02-4064", 4000},         // inline
	} {
		p := filepath.Join(src, c.name)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b[c.off] ^= 0x40
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if uuid() == base {
			t.Errorf("%s: changing byte %d leaves the UUID unchanged", c.name, c.off)
		}
		b[c.off] ^= 0x40
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if uuid() != base {
			t.Errorf("%s: restoring byte %d does not restore the UUID", c.name, c.off)
		}
	}
}

// TestWritePlainChanged checks that a file shrinking or growing after the
// tree was built is an error naming it, and that nothing is left running.
func TestWritePlainChanged(t *testing.T) {
	for _, delta := range []int{-1, 1} {
		src := plainTestTree(t)
		tree, err := image.FromDir(src, image.Options{})
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(src, "sizes/f10-1048577")
		b, _ := os.ReadFile(p)
		if delta < 0 {
			b = b[:len(b)-1]
		} else {
			b = append(b, 1)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		o := baseOpts()
		o.Jobs = 2
		f, err := os.Create(filepath.Join(t.TempDir(), "img"))
		if err != nil {
			t.Fatal(err)
		}
		err = Write(context.Background(), f, tree, o)
		f.Close()
		if err == nil || !bytes.Contains([]byte(err.Error()), []byte("f10-1048577")) {
			t.Errorf("size change %+d: error %v, want one naming the file", delta, err)
		}
	}
}

// TestPageCache reads random ranges of a file through the spill file's
// page cache, many more pages than it holds, across page boundaries and
// up to the partial last page, and checks every byte.
func TestPageCache(t *testing.T) {
	data := make([]byte, (cachePageCount+10)*cachePageSize+1234)
	rng := rand.New(rand.NewSource(3))
	rng.Read(data)
	r := bytes.NewReader(data)
	var c pageCache
	for i := range 5000 {
		n := rng.Intn(3 * cachePageSize)
		if i%10 == 0 {
			n = rng.Intn(100)
		}
		off := rng.Int63n(int64(len(data) - n + 1))
		if i%97 == 0 {
			off = int64(len(data) - n) // the end
		}
		b := make([]byte, n)
		if err := c.readAt(r, int64(len(data)), b, off); err != nil {
			t.Fatalf("read %d+%d: %v", off, n, err)
		}
		if !bytes.Equal(b, data[off:off+int64(n)]) {
			t.Fatalf("read %d+%d: wrong bytes", off, n)
		}
	}
	if len(c.slots) != cachePageCount || len(c.pages) > cachePageCount {
		t.Errorf("%d slots, %d pages mapped; want at most %d", len(c.slots), len(c.pages), cachePageCount)
	}
	if err := c.readAt(r, int64(len(data)), make([]byte, 2), int64(len(data)-1)); err == nil {
		t.Error("a read past the end succeeds")
	}
}
