package erofs

import (
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/closurefs/closurefs/integration/fixture"
)

// rdReadAll reads every regular file of fsys and returns the bytes read.
func rdReadAll(b *testing.B, fsys fs.FS) int64 {
	buf := make([]byte, 128<<10)
	var total int64
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		f, err := fsys.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{f}, buf)
		total += n
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return total
}

// BenchmarkReadImage reads every file of an mkfs.erofs -zlz4hc image of
// the fixture store with the reader (cold pcluster cache each time), and,
// side by side as the reference, through a fresh kernel mount of the same
// image and with fsck.erofs --extract.
func BenchmarkReadImage(b *testing.B) {
	bin, err := exec.LookPath("mkfs.erofs")
	if err != nil {
		b.Skip("mkfs.erofs not installed")
	}
	f := fixture.Get(b)
	args := []string{"-zlz4hc", "--exclude-path=.links"}
	// Debian's mkfs.erofs 1.5 cannot store a 255-byte name.
	if p := f.Named["name-255"]; p != "" {
		for _, sp := range f.Paths {
			if strings.HasPrefix(p, sp+"/") {
				args = append(args, "--exclude-path="+filepath.Base(sp))
			}
		}
	}
	img := rdMkfs(b, bin, f.OptStoreDir, args...)
	var size int64
	b.Run("reader", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			fh, err := os.Open(img)
			if err != nil {
				b.Fatal(err)
			}
			rd, err := Open(fh)
			if err != nil {
				b.Fatal(err)
			}
			size = rdReadAll(b, rd)
			fh.Close()
		}
		b.SetBytes(size)
	})
	b.Run("kernel-mount", func(b *testing.B) {
		if os.Geteuid() != 0 {
			b.Skip("mounting needs root")
		}
		mnt := b.TempDir()
		for i := 0; i < b.N; i++ {
			if out, err := exec.Command("mount", "-t", "erofs", "-o", "ro,loop", img, mnt).CombinedOutput(); err != nil {
				b.Skipf("mount: %v %s", err, out)
			}
			n := rdReadAll(b, os.DirFS(mnt))
			exec.Command("umount", mnt).Run()
			b.SetBytes(n)
		}
	})
	b.Run("fsck.erofs-extract", func(b *testing.B) {
		fsck, err := exec.LookPath("fsck.erofs")
		if err != nil {
			b.Skip("fsck.erofs not installed")
		}
		for i := 0; i < b.N; i++ {
			dst := filepath.Join(b.TempDir(), "x")
			if out, err := exec.Command(fsck, "--extract="+dst, img).CombinedOutput(); err != nil {
				b.Fatalf("fsck.erofs: %v\n%s", err, out)
			}
			os.RemoveAll(dst)
		}
		b.SetBytes(size)
	})
}
