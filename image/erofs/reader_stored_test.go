package erofs

import (
	"bytes"
	"io"
	"io/fs"
	"os"
	"testing"

	"github.com/closurefs/closurefs/image"
)

// TestStoredAt checks, on mkfs.erofs images, that every range StoredAt
// reports holds the file's bytes in the image, and that an uncompressed
// image reports every non-empty file as stored.
func TestStoredAt(t *testing.T) {
	src := rdTestTree(t)
	for _, c := range []struct {
		name  string
		args  []string
		plain bool
	}{
		{"plain", nil, true},
		{"lz4hc", []string{"-zlz4hc"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			img := rdMkfs(t, rdMkfsDebian(t), src, c.args...)
			raw, err := os.ReadFile(img)
			if err != nil {
				t.Fatal(err)
			}
			rd := rdOpenImage(t, img)
			files, stored := 0, 0
			err = fs.WalkDir(rd, ".", func(p string, d fs.DirEntry, err error) error {
				if err != nil || !d.Type().IsRegular() {
					return err
				}
				f, err := rd.Open(p)
				if err != nil {
					return err
				}
				defer f.Close()
				want, err := io.ReadAll(f)
				if err != nil {
					return err
				}
				s, ok := f.(image.StoredRanger)
				if !ok {
					t.Fatalf("%s: the file is no StoredRanger", p)
				}
				if len(want) > 0 {
					files++
				}
				for off := 0; off < len(want); {
					pa, k, ok := s.StoredAt(int64(off), len(want)-off)
					if !ok {
						if c.plain {
							t.Errorf("%s: byte %d not stored as it is in an uncompressed image", p, off)
						}
						break
					}
					if k <= 0 || k > len(want)-off || pa+int64(k) > int64(len(raw)) {
						t.Fatalf("%s: StoredAt(%d) = %d, %d bytes: out of range", p, off, pa, k)
					}
					if !bytes.Equal(raw[pa:pa+int64(k)], want[off:off+k]) {
						t.Fatalf("%s: bytes %d-%d stored at %d differ from the file", p, off, off+k, pa)
					}
					if off == 0 {
						stored++
					}
					off += k
				}
				if _, _, ok := s.StoredAt(int64(len(want)), 1); ok {
					t.Errorf("%s: StoredAt at the end of the file reports bytes", p)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%d of %d non-empty files start with bytes stored as they are", stored, files)
			if c.plain && stored != files {
				t.Errorf("%d of %d non-empty files stored as they are in an uncompressed image", stored, files)
			}
		})
	}
}
