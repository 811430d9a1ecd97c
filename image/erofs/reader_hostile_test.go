package erofs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestHostileImages damages specific structures of a real image and checks
// that the reader reports each with a clear error instead of misbehaving.
func TestHostileImages(t *testing.T) {
	bin, err := exec.LookPath("mkfs.erofs")
	if err != nil {
		t.Skip("mkfs.erofs not installed")
	}
	src := t.TempDir()
	text := bytes.Repeat([]byte("some compressible text, "), 2000)
	os.WriteFile(filepath.Join(src, "f"), text, 0o644)
	os.MkdirAll(filepath.Join(src, "d", "e"), 0o755)
	os.WriteFile(filepath.Join(src, "d", "g"), []byte("g"), 0o644)
	os.Symlink("f", filepath.Join(src, "l"))
	imgPath := filepath.Join(t.TempDir(), "img")
	if out, err := exec.Command(bin, "-T0", "-d0", "-zlz4", "-Elegacy-compress", imgPath, src).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.erofs: %v\n%s", err, out)
	}
	orig, err := os.ReadFile(imgPath)
	if err != nil {
		t.Fatal(err)
	}
	rd, err := Open(bytes.NewReader(orig))
	if err != nil {
		t.Fatal(err)
	}
	inodeOf := func(name string) *rdInode {
		in, err := rd.Resolve("test", name, false)
		if err != nil {
			t.Fatal(err)
		}
		return in
	}
	fIn, dIn, eIn, lIn, root := inodeOf("f"), inodeOf("d"), inodeOf("d/e"), inodeOf("l"), inodeOf(".")
	if fIn.layout != LayoutCompressedFull {
		t.Fatalf("f has layout %d, want full indexes", fIn.layout)
	}
	dirBlock := func(in *rdInode) int64 {
		e, err := rd.mapFlat(in, 0)
		if err != nil {
			t.Fatal(err)
		}
		return e.pa
	}
	// direntPos returns the byte offset of name's dirent in dir's first block.
	direntPos := func(dir *rdInode, name string) int64 {
		b, _ := rd.dirBlock(dir, 0)
		d, _ := rdParseDirBlock(dir, 0, b)
		for j := 0; j < d.count; j++ {
			n, _, _, _ := d.entry(dir, j)
			if string(n) == name {
				return dirBlock(dir) + int64(j*DirentSize)
			}
		}
		t.Fatalf("no %s in nid %d", name, dir.nid)
		return 0
	}
	le := binary.LittleEndian
	fIndex := FullIndexStart(fIn.dataPos())
	sb := int64(SuperOffset)

	type op func(rd *Reader) error
	readF := func(name string) op {
		return func(rd *Reader) error { _, err := fs.ReadFile(rd, name); return err }
	}
	stat := func(name string) op { return func(rd *Reader) error { _, err := rd.Stat(name); return err } }
	cases := []struct {
		name    string
		damage  func(b []byte)
		keepSum bool // leave the superblock checksum stale
		do      op   // nil: the error must come from Open
		want    string
	}{
		{name: "bad magic", damage: func(b []byte) { b[sb] ^= 0xff }, want: "not an erofs image"},
		{name: "stale checksum", damage: func(b []byte) { b[sb+40]++ }, keepSum: true, want: "superblock checksum"},
		{name: "block size", damage: func(b []byte) { b[sb+12] = 31 }, want: "block size 2^31 out of range"},
		{name: "unknown feature", damage: func(b []byte) { le.PutUint32(b[sb+80:], le.Uint32(b[sb+80:])|0x8000) }, want: "unsupported incompatible features"},
		{name: "root nid beyond the image", damage: func(b []byte) { le.PutUint16(b[sb+14:], 0xffff) }, want: "lies beyond the image end"},
		{name: "root is a file", damage: func(b []byte) { le.PutUint16(b[sb+14:], uint16(fIn.nid)) }, want: "not a directory"},
		{name: "lz4 algorithm missing from the superblock", damage: func(b []byte) {
			// Mark the image as having no 0padding and no compression at all.
			le.PutUint32(b[sb+80:], 0)
			le.PutUint16(b[sb+84:], 0)
		}, do: readF("f"), want: ""},
		{name: "i_format bits", damage: func(b []byte) { b[fIn.pos] |= 0x80 }, do: readF("f"), want: "unsupported i_format"},
		{name: "bogus mode", damage: func(b []byte) { le.PutUint16(b[fIn.pos+4:], 0o170644) }, do: stat("f"), want: "bogus mode"},
		{name: "data beyond the image", damage: func(b []byte) {
			b[eIn.pos] &^= 7 << 1 // FLAT_PLAIN
			le.PutUint32(b[eIn.pos+16:], 0x7fffffff)
		}, do: func(rd *Reader) error { _, err := rd.ReadDir("d/e"); return err }, want: "beyond the image end"},
		{name: "huge symlink", damage: func(b []byte) { le.PutUint32(b[lIn.pos+8:], 1<<20) }, do: func(rd *Reader) error { _, err := rd.ReadLink("l"); return err }, want: "symlink target of 1048576 bytes"},
		{name: "dirent name offset", damage: func(b []byte) { le.PutUint16(b[dirBlock(dIn)+8:], 7) }, do: func(rd *Reader) error { _, err := rd.ReadDir("d"); return err }, want: "first name offset 7"},
		{name: "directory loop", damage: func(b []byte) { le.PutUint64(b[direntPos(dIn, "e"):], dIn.nid) }, do: stat("d/e"), want: "directory loop"},
		{name: "hard-linked directory", damage: func(b []byte) { le.PutUint64(b[direntPos(root, "d"):], eIn.nid) }, do: stat("d"), want: "hard-linked directory"},
		{name: "entry to the root", damage: func(b []byte) { le.PutUint64(b[direntPos(dIn, "e"):], root.nid) }, do: stat("d/e"), want: "directory loop"},
		{name: "lookback distance", damage: func(b []byte) {
			x := fIndex + 1*LclusterIndexSize
			le.PutUint16(b[x:], LclusterNonhead)
			le.PutUint16(b[x+4:], 1000)
		}, do: func(rd *Reader) error {
			f, err := rd.Open("f")
			if err != nil {
				return err
			}
			_, err = f.(io.ReaderAt).ReadAt(make([]byte, 10), 5000)
			return err
		}, want: "bogus lookback distance 1000"},
		{name: "cluster offset", damage: func(b []byte) { le.PutUint16(b[fIndex+2:], 0xffff) }, do: readF("f"), want: "cluster offset 65535 beyond the lcluster"},
		{name: "pcluster beyond the image", damage: func(b []byte) { le.PutUint32(b[fIndex+4:], 0x00ffffff) }, do: readF("f"), want: "beyond the image end"},
		{name: "lz4 garbage", damage: func(b []byte) {
			pblk := int64(le.Uint32(b[fIndex+4:]))
			for i := int64(0); i < 4096; i++ {
				b[pblk*4096+i] = 0xf0
			}
		}, do: readF("f"), want: "lz4:"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := append([]byte(nil), orig...)
			c.damage(b)
			if !c.keepSum {
				rdFixChecksum(b)
			}
			rd, err := Open(bytes.NewReader(b))
			if c.do != nil {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				err = c.do(rd)
			}
			if c.want == "" {
				// Inconsistent but harmless: any outcome but a panic.
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
			if c.name != "bad magic" && c.name != "unknown feature" && !errors.Is(err, ErrCorrupt) && !strings.Contains(err.Error(), "lz4") {
				t.Errorf("error %v does not wrap ErrCorrupt", err)
			}
			t.Log(err)
		})
	}
	// A truncated image is refused at once, as a truncated squashfs is.
	if _, err := Open(bytes.NewReader(orig[:len(orig)-1])); err == nil || !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "image truncated") {
		t.Errorf("truncated image: error %v", err)
	}
	// The undamaged image reads in full.
	if err := rdWalkAll(rd, 100, 1<<20); err != nil {
		t.Fatal(err)
	}
	if b, err := fs.ReadFile(rd, "f"); err != nil || !bytes.Equal(b, text) {
		t.Fatalf("f: %v", err)
	}
}
