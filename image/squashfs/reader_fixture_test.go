package squashfs

import (
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"testing"

	"github.com/closurefs/closurefs/closure"
	"github.com/closurefs/closurefs/integration/fixture"
)

// TestFixtureNARHashes reads images of the shared fixture closure made by
// the reference tools and checks that the NAR hash of every store path
// read through the Reader equals the one Nix recorded.
func TestFixtureNARHashes(t *testing.T) {
	fx := fixture.Get(t)
	db, err := closure.OpenDB(fx.DB, fx.StoreDir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cl, err := db.Resolve([]string{fx.Root})
	if err != nil {
		t.Fatal(err)
	}
	if len(cl.Paths) != len(fx.Paths) {
		t.Fatalf("database closure has %d paths, fixture %d", len(cl.Paths), len(fx.Paths))
	}
	names := make([]string, len(cl.Paths))
	for i, p := range cl.Paths {
		names[i] = path.Base(p.Path)
	}

	// mksquashfs takes the store paths themselves and puts each at the
	// image root by its base name, as a store image holds them.
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"mksquashfs-zstd", []string{"-comp", "zstd", "-Xcompression-level", "3", "-no-xattrs", "-all-root"}},
		{"mksquashfs-lz4-4k-nofrag", []string{"-comp", "lz4", "-b", "4096", "-no-fragments", "-no-xattrs"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !haveTool("mksquashfs") {
				t.Skip("mksquashfs not installed")
			}
			img := filepath.Join(t.TempDir(), "fixture.sqfs")
			args := append(append([]string{}, fx.Paths...), img, "-noappend", "-quiet", "-no-progress")
			if out, err := exec.Command("mksquashfs", append(args, tc.args...)...).CombinedOutput(); err != nil {
				t.Fatalf("mksquashfs: %v\n%s", err, out)
			}
			f, err := os.Open(img)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			r, err := Open(f)
			if err != nil {
				t.Fatal(err)
			}
			res, err := closure.HashPaths(r, names, closure.HashOptions{Jobs: 2})
			if err != nil {
				t.Fatal(err)
			}
			for i, p := range cl.Paths {
				if res[i].Hash != p.NarHash || res[i].Size != p.NarSize {
					t.Errorf("%s: NAR %x (%d bytes) through the reader, Nix has %x (%d bytes)", p.Path, res[i].Hash, res[i].Size, p.NarHash, p.NarSize)
				}
			}
		})
	}
}
