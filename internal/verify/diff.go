package verify

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
)

// FirstDiff compares the tree at name in got (the tree being verified) with
// the one at name in want (a reference, e.g. os.DirFS of a store
// directory), in NAR order, and describes the first difference that
// matters to a NAR hash: an entry only on one side, a different type,
// executable bit, symlink target, size or content. Entries are named under
// storeDir. It returns "" if the trees agree. A reader panic is reported as
// a difference, not propagated.
func FirstDiff(got, want fs.FS, name, storeDir string) (d string) {
	defer func() {
		if r := recover(); r != nil {
			d = fmt.Sprintf("%s/%s: reader panic: %v", storeDir, name, r)
		}
	}()
	return firstDiff(got, want, name, storeDir, 0)
}

func firstDiff(got, want fs.FS, name, storeDir string, depth int) string {
	full := storeDir + "/" + name
	if depth > maxDepth {
		return full + ": directories nested too deep"
	}
	gi, err := fs.Lstat(got, name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return full + ": missing"
		}
		return fmt.Sprintf("%s: unreadable: %v", full, err)
	}
	wi, err := fs.Lstat(want, name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return full + ": not in the reference"
		}
		return fmt.Sprintf("%s: unreadable in the reference: %v", full, err)
	}
	gt, wt := kind(gi.Mode()), kind(wi.Mode())
	if gt != wt {
		return fmt.Sprintf("%s: is a %s, the reference has a %s", full, gt, wt)
	}
	switch gt {
	case "symlink":
		g, err := fs.ReadLink(got, name)
		if err != nil {
			return fmt.Sprintf("%s: unreadable symlink: %v", full, err)
		}
		w, err := fs.ReadLink(want, name)
		if err != nil {
			return fmt.Sprintf("%s: unreadable symlink in the reference: %v", full, err)
		}
		if g != w {
			return fmt.Sprintf("%s: symlink to %q, the reference to %q", full, g, w)
		}
	case "file":
		if gx, wx := gi.Mode()&0o100 != 0, wi.Mode()&0o100 != 0; gx != wx {
			return fmt.Sprintf("%s: executable %v, in the reference %v", full, gx, wx)
		}
		if gi.Size() != wi.Size() {
			return fmt.Sprintf("%s: size %d, in the reference %d", full, gi.Size(), wi.Size())
		}
		return diffContents(got, want, name, full, gi.Size())
	case "directory":
		ge, err := fs.ReadDir(got, name)
		if err != nil {
			return fmt.Sprintf("%s: unreadable directory: %v", full, err)
		}
		we, err := fs.ReadDir(want, name)
		if err != nil {
			return fmt.Sprintf("%s: unreadable directory in the reference: %v", full, err)
		}
		i, j := 0, 0
		for i < len(ge) || j < len(we) {
			switch {
			case j == len(we) || (i < len(ge) && ge[i].Name() < we[j].Name()):
				return fmt.Sprintf("%s/%s: not in the reference", full, ge[i].Name())
			case i == len(ge) || we[j].Name() < ge[i].Name():
				return fmt.Sprintf("%s/%s: missing", full, we[j].Name())
			}
			if d := firstDiff(got, want, path.Join(name, ge[i].Name()), storeDir, depth+1); d != "" {
				return d
			}
			i++
			j++
		}
	}
	return ""
}

func kind(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return "file"
	case m.IsDir():
		return "directory"
	case m&fs.ModeSymlink != 0:
		return "symlink"
	}
	return strings.TrimSpace(m.Type().String()) + " special file"
}

// diffContents compares two regular files of the same size.
func diffContents(got, want fs.FS, name, full string, size int64) string {
	gf, err := got.Open(name)
	if err != nil {
		return fmt.Sprintf("%s: unreadable: %v", full, err)
	}
	defer gf.Close()
	wf, err := want.Open(name)
	if err != nil {
		return fmt.Sprintf("%s: unreadable in the reference: %v", full, err)
	}
	defer wf.Close()
	const chunk = 256 << 10
	gb, wb := make([]byte, chunk), make([]byte, chunk)
	var off int64
	for off < size {
		n := int64(chunk)
		if size-off < n {
			n = size - off
		}
		if _, err := io.ReadFull(gf, gb[:n]); err != nil {
			return fmt.Sprintf("%s: unreadable at byte %d: %v", full, off, err)
		}
		if _, err := io.ReadFull(wf, wb[:n]); err != nil {
			return fmt.Sprintf("%s: unreadable in the reference at byte %d: %v", full, off, err)
		}
		if !bytes.Equal(gb[:n], wb[:n]) {
			for k := int64(0); k < n; k++ {
				if gb[k] != wb[k] {
					return fmt.Sprintf("%s: content differs from the reference at byte %d", full, off+k)
				}
			}
		}
		off += n
	}
	return ""
}
