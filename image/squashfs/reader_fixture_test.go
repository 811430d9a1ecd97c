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
		tool string
		args []string
	}{
		{"mksquashfs-zstd", "mksquashfs", []string{"-comp", "zstd", "-Xcompression-level", "3", "-no-xattrs", "-all-root"}},
		{"mksquashfs-lz4-4k-nofrag", "mksquashfs", []string{"-comp", "lz4", "-b", "4096", "-no-fragments", "-no-xattrs"}},
		// unsquashfs rejects gensquashfs's lz4 images; the kernel reads them.
		{"gensquashfs-lz4", "gensquashfs", []string{"-c", "lz4"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if !haveTool(tc.tool) {
				t.Skipf("%s not installed", tc.tool)
			}
			img := filepath.Join(t.TempDir(), "fixture.sqfs")
			var cmd *exec.Cmd
			if tc.tool == "mksquashfs" {
				args := append(append([]string{}, fx.Paths...), img, "-noappend", "-quiet", "-no-progress")
				cmd = exec.Command("mksquashfs", append(args, tc.args...)...)
			} else {
				// gensquashfs packs one directory: hard-link the store
				// paths into one (cp -al keeps symlinks and modes).
				dir := filepath.Join(t.TempDir(), "store")
				if err := os.Mkdir(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				cp := exec.Command("cp", append(append([]string{"-al"}, fx.Paths...), dir)...)
				if out, err := cp.CombinedOutput(); err != nil {
					t.Skipf("cp -al: %v: %s", err, out)
				}
				cmd = exec.Command("gensquashfs", append(append([]string{"-q", "-f", "-D", dir}, tc.args...), img)...)
			}
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", tc.tool, err, out)
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
