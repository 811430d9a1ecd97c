package erofs

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/closurefs/closurefs/image"
	"github.com/closurefs/closurefs/internal/treetest"
)

// TestWriteBigPclusterTails writes files of many sizes with 64 KiB
// pclusters and inline or fragment tails, whose compact index packs can
// begin inside a file's last big pcluster and end with padding past the
// file. The index writer once took that padding for heads and looped
// forever (found on the bench closure with -zlz4hc -Eztailpacking
// -C65536): Write must finish, and the kernel and fsck.erofs must read
// the image back.
func TestWriteBigPclusterTails(t *testing.T) {
	src := t.TempDir()
	rng := rand.New(rand.NewSource(7))
	words := strings.Fields("store path closure nix erofs squashfs pcluster lcluster index head plain tail fragment block the of and a to in")
	for i := 0; i < 160; i++ {
		var b strings.Builder
		size := 60<<10 + i*3217
		for b.Len() < size {
			if rng.Intn(8) == 0 {
				fmt.Fprintf(&b, "%08x ", rng.Uint32())
			} else {
				b.WriteString(words[rng.Intn(len(words))] + " ")
			}
		}
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("f%03d", i)), []byte(b.String()[:size]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		name string
		set  func(*Options)
		fsck bool // Debian's fsck.erofs 1.5 knows the features
	}{
		{"ztailpacking", func(o *Options) { o.Ztailpacking = true }, true},
		{"fragments", func(o *Options) { o.Fragments = true }, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			tree, err := image.FromDir(src, image.Options{})
			if err != nil {
				t.Fatal(err)
			}
			o := baseOpts()
			o.Compressor, o.PclusterSize, o.Label = "lz4hc", 65536, DefaultLabel
			c.set(&o)
			img := filepath.Join(t.TempDir(), "img.erofs")
			f, err := os.Create(img)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			// A hang shows as a Write that never returns: give up after far
			// longer than the write takes (well under a second).
			done := make(chan error, 1)
			go func() { done <- Write(context.Background(), f, tree, o) }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(2 * time.Minute):
				t.Fatal("Write did not finish in 2 minutes: the index writer loops")
			}
			if c.fsck {
				fsckImage(t, img, src)
			}
			needMount(t)
			treetest.Compare(t, kmount(t, img), src, treetest.Options{MinEntries: 100})
		})
	}
}
