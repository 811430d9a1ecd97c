package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/closurefs/closurefs/image"
	"github.com/spf13/pflag"
)

// imageKind is one image format that ls, cat and info can read.
type imageKind struct {
	name string
	// The format is recognised by magic at magicOff.
	magicOff int64
	magic    []byte
	open     func(f *os.File) (*openedImage, error)
}

// imageKinds is the detection table of openImage.
func imageKinds() []imageKind {
	return []imageKind{
		squashfsKind(),
		erofsKind(),
	}
}

// openedImage is an image opened for inspection.
type openedImage struct {
	Format string
	FS     image.FS
	// Info is the format's summary, printed by info --json.
	Info any
	// Summary prints the human-readable form of Info.
	Summary func(w io.Writer)
	file    *os.File
}

func (o *openedImage) Close() error { return o.file.Close() }

// openImage opens the image at p, detecting its format by magic.
func openImage(p string) (*openedImage, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, k := range imageKinds() {
		names = append(names, k.name)
		buf := make([]byte, len(k.magic))
		if n, _ := f.ReadAt(buf, k.magicOff); n != len(buf) || !bytes.Equal(buf, k.magic) {
			continue
		}
		img, err := k.open(f)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		img.Format = k.name
		img.file = f
		return img, nil
	}
	f.Close()
	return nil, fmt.Errorf("%s: not a recognised image (known formats: %s)", p, strings.Join(names, ", "))
}

func infoCommand() *command {
	return &command{
		name:    "info",
		summary: "show an image's format, compressor, block size, counts and sizes",
		usage:   "IMAGE [--json]",
		help:    "Reads the superblock and tables of a squashfs or erofs image and prints a summary.",
		setup: func(fs *pflag.FlagSet, e *env) func([]string) error {
			asJSON := fs.Bool("json", false, "print the summary as JSON")
			return func(args []string) error {
				if len(args) != 1 {
					return usagef("info takes exactly one IMAGE")
				}
				img, err := openImage(args[0])
				if err != nil {
					return err
				}
				defer img.Close()
				if *asJSON {
					enc := json.NewEncoder(e.stdout)
					enc.SetIndent("", "  ")
					return enc.Encode(img.Info)
				}
				img.Summary(e.stdout)
				return nil
			}
		},
	}
}

func catCommand() *command {
	return &command{
		name:    "cat",
		summary: "print files from an image",
		usage:   "IMAGE PATH...",
		help: `Writes the content of each PATH (relative to the image root; symlinks inside
the image are followed) to standard output.`,
		setup: func(fs *pflag.FlagSet, e *env) func([]string) error {
			return func(args []string) error {
				if len(args) < 2 {
					return usagef("cat takes an IMAGE and at least one PATH")
				}
				img, err := openImage(args[0])
				if err != nil {
					return err
				}
				defer img.Close()
				for _, p := range args[1:] {
					c, err := img.canonical(p)
					if err == nil {
						err = catFile(e.stdout, img, c)
					}
					if err != nil {
						return fmt.Errorf("%s: %s: %w", args[0], p, unwrapPathError(err))
					}
				}
				return nil
			}
		},
	}
}

func catFile(w io.Writer, img *openedImage, p string) error {
	f, err := img.FS.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("not a regular file (%s)", typeName(fi.Mode()))
	}
	_, err = io.Copy(w, f)
	return err
}

// canonical turns a path typed by the user ("/", "/a/b/", "./a", "s/..")
// into the image's own name for what it leads to, resolving "." and ".."
// after the symlinks before them, as the kernel does (a final symlink is
// followed only before a trailing "/").
func (o *openedImage) canonical(p string) (string, error) {
	c, ok := o.FS.(interface {
		Canonical(p string, follow bool) (string, error)
	})
	if !ok {
		return "", fmt.Errorf("%s images do not resolve paths", o.Format)
	}
	return c.Canonical(p, false)
}

// unwrapPathError drops fs.PathError's op and path, which repeat what the
// caller prints.
func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func typeName(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m.IsRegular():
		return "regular file"
	case m&fs.ModeSymlink != 0:
		return "symlink"
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "block device"
	case m&fs.ModeNamedPipe != 0:
		return "fifo"
	case m&fs.ModeSocket != 0:
		return "socket"
	}
	return "unknown"
}

// lsMode spells a mode as ls -l does: the type letter (- d l c b p s),
// then rwx for owner, group and others, with s/S for setuid and setgid
// and t/T for the sticky bit.
func lsMode(m fs.FileMode) string {
	b := []byte("?rwxrwxrwx")
	switch {
	case m.IsRegular():
		b[0] = '-'
	case m.IsDir():
		b[0] = 'd'
	case m&fs.ModeSymlink != 0:
		b[0] = 'l'
	case m&fs.ModeCharDevice != 0:
		b[0] = 'c'
	case m&fs.ModeDevice != 0:
		b[0] = 'b'
	case m&fs.ModeNamedPipe != 0:
		b[0] = 'p'
	case m&fs.ModeSocket != 0:
		b[0] = 's'
	}
	for i := 0; i < 9; i++ {
		if m&(1<<(8-i)) == 0 {
			b[i+1] = '-'
		}
	}
	special := func(i int, set bool, c byte) {
		if !set {
			return
		}
		if b[i] == 'x' {
			b[i] = c
		} else {
			b[i] = c - 'a' + 'A'
		}
	}
	special(3, m&fs.ModeSetuid != 0, 's')
	special(6, m&fs.ModeSetgid != 0, 's')
	special(9, m&fs.ModeSticky != 0, 't')
	return string(b)
}

// lsEntry is one line of ls --json.
type lsEntry struct {
	Path   string `json:"path"`
	Type   string `json:"type"`
	Mode   string `json:"mode"`
	Perm   uint32 `json:"perm"`
	Size   int64  `json:"size"`
	Nlink  uint32 `json:"nlink"`
	UID    uint32 `json:"uid"`
	GID    uint32 `json:"gid"`
	Mtime  int64  `json:"mtime"`
	Ino    uint64 `json:"ino"`
	Rdev   uint64 `json:"rdev,omitempty"`
	Target string `json:"target,omitempty"`
}

func lsCommand() *command {
	return &command{
		name:    "ls",
		summary: "list a directory of an image",
		usage:   "IMAGE [PATH] [-l] [-R] [--json]",
		help: `Lists the entries of directory PATH (default: the image root), or PATH
itself if it is not a directory. Symlinks are not followed.`,
		setup: func(fs *pflag.FlagSet, e *env) func([]string) error {
			long := fs.BoolP("long", "l", false, "long format: mode, links, owner, size, mtime, name -> target")
			recursive := fs.BoolP("recursive", "R", false, "list subdirectories recursively (paths relative to PATH)")
			asJSON := fs.Bool("json", false, "print one JSON object per entry, one per line")
			return func(args []string) error {
				if len(args) < 1 || len(args) > 2 {
					return usagef("ls takes an IMAGE and an optional PATH")
				}
				img, err := openImage(args[0])
				if err != nil {
					return err
				}
				defer img.Close()
				p := "."
				if len(args) == 2 {
					if p, err = img.canonical(args[1]); err != nil {
						return fmt.Errorf("%s: %s: %w", args[0], args[1], unwrapPathError(err))
					}
				}
				l := &lister{fsys: img.FS, long: *long, json: *asJSON}
				if *long && !*asJSON {
					l.tw = tabwriter.NewWriter(e.stdout, 0, 8, 1, ' ', 0)
					l.out = l.tw
				} else {
					l.out = e.stdout
				}
				err = l.list(p, *recursive)
				if l.tw != nil {
					l.tw.Flush()
				}
				if err != nil {
					return fmt.Errorf("%s: %w", args[0], err)
				}
				return nil
			}
		},
	}
}

type lister struct {
	fsys image.FS
	long bool
	json bool
	out  io.Writer
	tw   *tabwriter.Writer
}

func (l *lister) list(p string, recursive bool) error {
	fi, err := l.fsys.Lstat(p)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return l.print(p, p, fi)
	}
	return l.listDir(p, "", recursive)
}

// listDir lists directory p; names are printed prefixed with rel.
func (l *lister) listDir(p, rel string, recursive bool) error {
	ents, err := l.fsys.ReadDir(p)
	if err != nil {
		return err
	}
	for _, ent := range ents {
		fi, err := ent.Info()
		if err != nil {
			return fmt.Errorf("%s: %w", path.Join(p, ent.Name()), err)
		}
		full := path.Join(p, ent.Name())
		if err := l.print(full, rel+ent.Name(), fi); err != nil {
			return err
		}
		if recursive && fi.IsDir() {
			if err := l.listDir(full, rel+ent.Name()+"/", true); err != nil {
				return err
			}
		}
	}
	return nil
}

func (l *lister) print(full, shown string, fi fs.FileInfo) error {
	ino, _ := image.InodeOf(fi)
	var target string
	if fi.Mode()&fs.ModeSymlink != 0 {
		t, err := l.fsys.ReadLink(full)
		if err != nil {
			return err
		}
		target = t
	}
	if l.json {
		b, err := json.Marshal(lsEntry{
			Path: full, Type: typeName(fi.Mode()), Mode: lsMode(fi.Mode()), Perm: uint32(fi.Mode().Perm()),
			Size: fi.Size(), Nlink: ino.Nlink, UID: ino.UID, GID: ino.GID, Mtime: ino.Mtime.Unix(),
			Ino: ino.Ino, Rdev: ino.Rdev, Target: target,
		})
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(l.out, "%s\n", b)
		return err
	}
	if !l.long {
		_, err := fmt.Fprintln(l.out, shown)
		return err
	}
	size := fmt.Sprint(fi.Size())
	if fi.Mode()&fs.ModeDevice != 0 {
		size = fmt.Sprintf("%d, %d", (ino.Rdev>>8)&0xfff|(ino.Rdev>>32)&^0xfff, ino.Rdev&0xff|(ino.Rdev>>12)&^0xff)
	}
	name := shown
	if target != "" {
		name += " -> " + target
	}
	_, err := fmt.Fprintf(l.tw, "%s\t%d\t%d\t%d\t%s\t%s\t%s\n", lsMode(fi.Mode()), ino.Nlink, ino.UID, ino.GID, size,
		ino.Mtime.UTC().Format(time.DateTime), tabSafe(name))
	return err
}

// tabSafe keeps a name from breaking the tabwriter columns.
func tabSafe(s string) string { return strings.NewReplacer("\t", `\t`, "\n", `\n`).Replace(s) }
