package integration

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/closurefs/closurefs/closure"
	"github.com/closurefs/closurefs/image"
	"github.com/closurefs/closurefs/image/erofs"
	"github.com/closurefs/closurefs/image/squashfs"
	"github.com/closurefs/closurefs/integration/fixture"
	"github.com/closurefs/closurefs/internal/verify"
)

// vCorruptCase is an image made by a reference tool for the corruption
// test, with the reader that opens it and the tool that extracts it as an
// independent judge of whether a flip changed the content.
type vCorruptCase struct {
	name string
	tool string
	args func(src, img string) []string
	// plain: file contents are stored as they are (uncompressed), so flips
	// can be aimed at file data.
	plain   bool
	open    func(b []byte) (image.FS, error)
	extract func(img, dir string) error
	// meta returns the metadata byte ranges of an image (nil: the bytes
	// outside the file data found).
	meta func(img []byte) [][2]int
}

// vErofsMeta returns the superblock and the 32-byte inode headers of an
// erofs image (the reader only locates them: nid = inode number - 1).
func vErofsMeta(img []byte) [][2]int {
	const sb = 1024
	if len(img) < sb+128 {
		return nil
	}
	blkBits := int(img[sb+12])
	meta := int(binary.LittleEndian.Uint32(img[sb+40:]))
	if blkBits < 9 || blkBits > 16 {
		return nil
	}
	fsys, err := erofs.Open(bytes.NewReader(img))
	if err != nil {
		return nil
	}
	out := [][2]int{{sb, sb + 128}}
	seen := map[uint64]bool{}
	fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		ino, ok := image.InodeOf(fi)
		if !ok || ino.Ino == 0 || seen[ino.Ino] {
			return nil
		}
		seen[ino.Ino] = true
		off := meta<<blkBits + int(ino.Ino-1)*32
		if off+32 <= len(img) {
			out = append(out, [2]int{off, off + 32})
		}
		return nil
	})
	return out
}

// vSquashfsMeta returns the superblock and the tables (inode, directory,
// fragment, export, id, xattr) that follow the data in a squashfs image.
func vSquashfsMeta(img []byte) [][2]int {
	if len(img) < 96 {
		return nil
	}
	le := func(o int) int { return int(binary.LittleEndian.Uint64(img[o:])) }
	inodes, used := le(64), le(40)
	if inodes <= 96 || used > len(img) || inodes >= used {
		return nil
	}
	return [][2]int{{0, 96}, {inodes, used}}
}

func vOpenSquashfs(b []byte) (image.FS, error) { return squashfs.Open(bytes.NewReader(b)) }

func vOpenErofs(b []byte) (image.FS, error) { return erofs.Open(bytes.NewReader(b)) }

func vFsckErofsExtract(img, dir string) error {
	out, err := exec.Command("fsck.erofs", "--extract="+dir, img).CombinedOutput()
	if err != nil {
		return fmt.Errorf("fsck.erofs: %v: %s", err, out)
	}
	return nil
}

func vUnsquashfsExtract(img, dir string) error {
	out, err := exec.Command("unsquashfs", "-no-progress", "-quiet", "-f", "-d", dir, img).CombinedOutput()
	if err != nil {
		return fmt.Errorf("unsquashfs: %v: %s", err, out)
	}
	return nil
}

var vCorruptCases = []vCorruptCase{
	{name: "mkfs.erofs-plain", tool: "mkfs.erofs", plain: true, open: vOpenErofs, extract: vFsckErofsExtract, meta: vErofsMeta,
		args: func(src, img string) []string { return []string{"-T0", "--all-root", img, src} }},
	{name: "mkfs.erofs-lz4hc", tool: "mkfs.erofs", open: vOpenErofs, extract: vFsckErofsExtract,
		args: func(src, img string) []string { return []string{"-zlz4hc", "-T0", "--all-root", img, src} }},
	{name: "mksquashfs-plain", tool: "mksquashfs", plain: true, open: vOpenSquashfs, extract: vUnsquashfsExtract, meta: vSquashfsMeta,
		args: func(src, img string) []string {
			return []string{src, img, "-noI", "-noD", "-noF", "-noX", "-all-root", "-noappend", "-quiet", "-no-progress"}
		}},
	{name: "mksquashfs-gzip", tool: "mksquashfs", open: vOpenSquashfs, extract: vUnsquashfsExtract,
		args: func(src, img string) []string {
			return []string{src, img, "-all-root", "-noappend", "-quiet", "-no-progress"}
		}},
}

// vFlipOutcome classifies one flipped image.
type vFlipOutcome int

const (
	vFlipDetected vFlipOutcome = iota // verify failed, or the image would not open
	vFlipWarned                       // verify passed with a convention warning (metadata such as an mtime changed)
	vFlipBenign                       // verify passed and the reference tool extracts the registered content
	vFlipRefFails                     // verify passed (hashes match), the reference tool rejects the image
	vFlipMissed                       // verify passed but the reference tool extracts different content
)

// TestVerifyCorruption flips single bytes, with a fixed seed, in file data
// and in metadata of images of part of the fixture, and checks that verify
// never passes an image whose content changed (judged by comparing the reference
// tool's extraction with the source tree), never panics and never hangs.
// It logs the detection rates.
func TestVerifyCorruption(t *testing.T) {
	f := fixture.Get(t)
	paths := vClosureOf(t, f.Named["dag-top"])
	for _, k := range []string{"sizes", "symlinks", "exec", "empties", "identical-a", "identical-b", "single-file"} {
		paths = append(paths, f.Named[k])
	}
	paths = vSortedCopy(vDedupe(paths))
	infos, err := closure.ParseRegistration(bytes.NewReader(vNixDumpDB(t, nil, paths)), "dump-db", f.StoreDir)
	if err != nil {
		t.Fatal(err)
	}
	src := vStageStore(t, f, paths, nil)
	contents := vFileContents(t, src)
	dir := t.TempDir()
	const dataFlips, metaFlips, compressedFlips = 30, 30, 30
	for _, c := range vCorruptCases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := exec.LookPath(c.tool); err != nil {
				t.Skipf("%s not installed", c.tool)
			}
			img := filepath.Join(dir, c.name+".img")
			if out, err := exec.Command(c.tool, c.args(src, img)...).CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", c.tool, err, out)
			}
			data, err := os.ReadFile(img)
			if err != nil {
				t.Fatal(err)
			}
			// The intact image passes.
			if out := vCheckImage(t, c, data, infos); out != "" {
				t.Fatalf("intact image fails: %s", out)
			}
			rng := rand.New(rand.NewPCG(1, uint64(len(c.name))))
			var regions [][2]int
			if c.plain {
				regions = vDataRegions(data, contents)
				if len(regions) == 0 {
					t.Fatal("no file data found in the plain image")
				}
			}
			var meta [][2]int
			if c.meta != nil {
				if meta = c.meta(data); meta == nil {
					t.Fatal("cannot locate the metadata")
				}
			}
			isData := func(off int) bool {
				for _, r := range regions {
					if off >= r[0] && off < r[1] {
						return true
					}
				}
				return false
			}
			type tally struct{ n, detected, unopenable, warned, benign, refFails int }
			var dataT, metaT tally
			flips := dataFlips + metaFlips
			if !c.plain {
				flips = compressedFlips
			}
			for i := 0; i < flips; i++ {
				var off int
				isDataFlip := i < dataFlips && c.plain
				if isDataFlip {
					r := regions[rng.IntN(len(regions))]
					off = r[0] + rng.IntN(r[1]-r[0])
				} else if len(meta) > 0 {
					r := meta[rng.IntN(len(meta))]
					off = r[0] + rng.IntN(r[1]-r[0])
				} else {
					for {
						off = rng.IntN(len(data))
						if !c.plain || !isData(off) {
							break
						}
					}
				}
				bit := byte(1) << rng.IntN(8)
				outcome, why := vFlipAndCheck(t, c, data, off, bit, infos, src)
				tl := &metaT
				if isDataFlip {
					tl = &dataT
				}
				tl.n++
				switch outcome {
				case vFlipDetected:
					tl.detected++
					if strings.HasPrefix(why, "image does not open") {
						tl.unopenable++
					}
				case vFlipWarned:
					tl.warned++
				case vFlipBenign:
					tl.benign++
				case vFlipRefFails:
					tl.refFails++
					t.Logf("offset %d bit %#x: verify passes (every NAR hash matches) but the reference rejects the image: %s", off, bit, why)
				case vFlipMissed:
					t.Errorf("offset %d bit %#x: verify passed a damaged image: %s", off, bit, why)
				}
				if isDataFlip && outcome != vFlipDetected {
					t.Errorf("data flip at offset %d bit %#x not detected (%s)", off, bit, why)
				}
			}
			if c.plain {
				t.Logf("%s: data flips: %d/%d detected (%.0f%%)", c.name, dataT.detected, dataT.n, vPct(dataT.detected, dataT.n))
			}
			where := "metadata flips"
			if !c.plain {
				where = "flips anywhere (compressed)"
			}
			t.Logf("%s: %s: %d/%d detected (%.0f%%; %d of them as an unreadable image), %d changed only metadata (warned), %d benign (the reference extracts the source content), %d rejected only by the reference",
				c.name, where, metaT.detected, metaT.n, vPct(metaT.detected, metaT.n), metaT.unopenable, metaT.warned, metaT.benign, metaT.refFails)
		})
	}
}

func vPct(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return 100 * float64(a) / float64(b)
}

func vDedupe(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// vFileContents returns the contents of the regular files under dir that
// are distinctive enough to be found in an image: at least 64 bytes and
// not made of a few byte values (zeros would match padding).
func vFileContents(t *testing.T, dir string) [][]byte {
	t.Helper()
	var out [][]byte
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		var seen [256]bool
		n := 0
		for _, c := range b {
			if !seen[c] {
				seen[c] = true
				n++
			}
		}
		if len(b) >= 64 && n >= 16 {
			out = append(out, b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// vDataRegions returns the byte ranges of img that hold a whole file's
// content.
func vDataRegions(img []byte, contents [][]byte) [][2]int {
	var out [][2]int
	for _, c := range contents {
		if i := bytes.Index(img, c); i >= 0 {
			out = append(out, [2]int{i, i + len(c)})
		}
	}
	return out
}

// vCheckImage verifies image bytes in process and returns "" if they pass,
// or what failed. A hang is a test failure.
func vCheckImage(t *testing.T, c vCorruptCase, b []byte, infos []closure.PathInfo) string {
	t.Helper()
	type result struct {
		rep *verify.Report
		err error
	}
	done := make(chan result, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	go func() {
		fsys, err := c.open(b)
		if err != nil {
			done <- result{err: fmt.Errorf("open: %w", err)}
			return
		}
		rep, err := verify.Check(ctx, fsys, infos, verify.Options{Jobs: 2, Ignore: []string{image.RegistrationName}})
		done <- result{rep, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			if ctx.Err() != nil {
				t.Errorf("verify hung (cancelled after 60s)")
			}
			return r.err.Error()
		}
		rep := r.rep
		for _, p := range rep.Paths {
			if strings.Contains(p.Detail, "reader panic") {
				t.Logf("READER PANIC (recovered, reported as corrupt): %s: %s", p.Path, p.Detail)
			}
		}
		if rep.Failed() {
			var why []string
			for _, p := range rep.Paths {
				if p.Status != verify.StatusOK {
					why = append(why, fmt.Sprintf("%s %s", p.Status, filepath.Base(p.Path)))
				}
			}
			if rep.RootError != "" {
				why = append(why, "root: "+rep.RootError)
			}
			if len(rep.Extra) > 0 {
				why = append(why, fmt.Sprintf("extra %q", rep.Extra))
			}
			return strings.Join(why, "; ")
		}
		return ""
	case <-time.After(90 * time.Second):
		t.Errorf("verify hung for 90s")
		return "hang"
	}
}

// vFlipAndCheck flips bit at off in a copy of img and classifies the result.
func vFlipAndCheck(t *testing.T, c vCorruptCase, orig []byte, off int, bit byte, infos []closure.PathInfo, src string) (vFlipOutcome, string) {
	t.Helper()
	b := bytes.Clone(orig)
	b[off] ^= bit
	fsys, err := c.open(b)
	if err != nil {
		return vFlipDetected, "image does not open: " + err.Error()
	}
	rep, err := verify.Check(context.Background(), fsys, infos, verify.Options{Jobs: 2, Ignore: []string{image.RegistrationName}})
	if err != nil {
		return vFlipDetected, err.Error()
	}
	for _, p := range rep.Paths {
		if strings.Contains(p.Detail, "reader panic") {
			t.Logf("READER PANIC (recovered, reported as corrupt) at offset %d: %s: %s", off, p.Path, p.Detail)
		}
	}
	if rep.Failed() {
		return vFlipDetected, "verify failed"
	}
	if len(rep.Warnings) > 0 {
		return vFlipWarned, fmt.Sprintf("warning %s %s", rep.Warnings[0].Kind, rep.Warnings[0].Detail)
	}
	// verify passed: ask the reference tool whether the content changed.
	flipped := filepath.Join(t.TempDir(), "flipped.img")
	if err := os.WriteFile(flipped, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "x")
	if err := c.extract(flipped, out); err != nil {
		return vFlipRefFails, err.Error()
	}
	for _, info := range infos {
		if d := verify.FirstDiff(closure.DirFS(out), closure.DirFS(src), filepath.Base(info.Path), "/nix/store"); d != "" {
			return vFlipMissed, "the reference extracts different content: " + d
		}
	}
	return vFlipBenign, "content unchanged"
}
