package erofs

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/closurefs/closurefs/image"
	"github.com/closurefs/closurefs/internal/treetest"
)

// text returns n bytes of pseudo-random words.
func text(rng *rand.Rand, n int) []byte {
	words := strings.Fields("store path closure nix erofs fragment tail packed inode the of and a to in")
	var b strings.Builder
	for b.Len() < n {
		fmt.Fprintf(&b, "%s%d ", words[rng.Intn(len(words))], rng.Intn(1000))
	}
	return []byte(b.String()[:n])
}

func TestAddFragmentDedupe(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	a := text(rng, 3000)
	other := append(text(rng, 500), a[len(a)-fragKeyLen:]...) // same key, other bytes
	wr := &Writer{}
	defer wr.closePacked()
	for _, c := range []struct {
		name string
		b    []byte
		off  int64 // expected offset
		size int64 // packed size afterwards
	}{
		{"first", a, 0, 3000},
		{"suffix", a[1500:], 1500, 3000},
		{"whole again", a, 0, 3000},
		{"same key, other bytes", other, 3000, 3000 + int64(len(other))},
		{"short", a[len(a)-10:], 3000 + int64(len(other)), 3010 + int64(len(other))},
		{"longer than any", append(text(rng, 100), a...), 3010 + int64(len(other)), 6110 + int64(len(other))},
		{"suffix of the newest", other[100:], 3100, 6110 + int64(len(other))},
	} {
		off, err := wr.addFragment(c.b)
		if err != nil {
			t.Fatal(err)
		}
		if off != c.off || wr.packedSize != c.size {
			t.Errorf("%s: offset %d, packed size %d; want %d, %d", c.name, off, wr.packedSize, c.off, c.size)
		}
	}
}

// TestWriteFragmentDedupe writes files whose tails repeat (small files
// that are suffixes of others, large files sharing their last bytes): the
// kernel and fsck.erofs must read back every file.
func TestWriteFragmentDedupe(t *testing.T) {
	src := t.TempDir()
	rng := rand.New(rand.NewSource(3))
	base := text(rng, 30000)
	files := map[string][]byte{"base": base}
	for i := 0; i < 20; i++ {
		// Suffixes of base and of its first pcluster-sized parts, and
		// larger files ending like base.
		files[fmt.Sprintf("suffix%02d", i)] = base[len(base)-100*(i+1):]
		files[fmt.Sprintf("part%02d", i)] = base[:4000+i*37]
		files[fmt.Sprintf("grown%02d", i)] = append(text(rng, 5000+i*100), base[len(base)-3000:]...)
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(src, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tree, err := image.FromDir(src, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, pc := range []int{0, 65536} {
		t.Run(fmt.Sprint("pcluster", pc), func(t *testing.T) {
			o := baseOpts()
			o.Compressor, o.Ztailpacking, o.Fragments, o.PclusterSize = "lz4hc", true, true, pc
			img := writeImage(t, tree, o)
			fsckNewImage(t, img, src, true)
			needMount(t)
			treetest.Compare(t, kmount(t, img), src, treetest.Options{MinEntries: 60})
		})
	}
}
