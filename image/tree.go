package image

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/closurefs/closurefs/internal/rawsys"
	"golang.org/x/sys/unix"
)

// RegistrationName is the file at the image root that holds the closure's
// registration when Options.Registration is set, as nixpkgs' make-squashfs
// and make-disk-image write it.
const RegistrationName = "nix-path-registration"

// Node is one entry of a Tree.
type Node struct {
	// Name is the entry's base name; "" for the root.
	Name string
	// Parent is the directory holding the node; nil for the root.
	Parent *Node
	// Mode holds the type bits and permissions (including setuid, setgid
	// and sticky bits) as in fs.FileMode.
	Mode fs.FileMode
	// Size is the content length of a regular file, the target length of
	// a symlink and 0 otherwise.
	Size int64
	// Target is a symlink's target.
	Target string
	// Children are a directory's entries, sorted by byte order of Name.
	Children []*Node
	// UID and GID own the node.
	UID, GID uint32
	// Mtime is the modification time in seconds since the epoch.
	Mtime int64
	// Rdev is the device number of a character or block device.
	Rdev uint64
	// Nlink is the link count as the image should record it: for a
	// directory 2 plus its subdirectories; for other nodes the number of
	// tree entries that share it (1 unless hard links are kept).
	Nlink uint32
	// Link, when hard links are kept, points from the second and later
	// entries of one inode to the first one in walk order, whose inode
	// the image should reuse. It is nil for the first entry.
	Link *Node
	// Same points from a regular file to the first file in walk order with
	// identical content (size and SHA-256), when that is another node, so
	// that writers can store the data once. Nil when the content is unique
	// or the node is the first of its kind, and nil when Link is set.
	Same *Node
	// Digest is the SHA-256 of a regular file's content, set only when
	// HasDigest is true (files whose size matches another file's size).
	Digest    [32]byte
	HasDigest bool
	// Source is the path on disk to read a regular file's content from.
	// Data is used instead when Source is "".
	Source string
	// Data is the content of a regular file that does not come from disk.
	Data []byte
	// Xattrs are the node's extended attributes, sorted by key.
	Xattrs []Xattr

	// devIno identifies the source inode (for hard links and hashing once).
	dev, ino uint64
	// linked is set on a regular file whose source has other links.
	linked bool
}

// IsDir, IsRegular and IsSymlink report the node's type.
func (n *Node) IsDir() bool { return n.Mode.IsDir() }

// IsRegular reports whether n is a regular file.
func (n *Node) IsRegular() bool { return n.Mode.IsRegular() }

// IsSymlink reports whether n is a symbolic link.
func (n *Node) IsSymlink() bool { return n.Mode&fs.ModeSymlink != 0 }

// Path returns the node's slash-separated path from the tree root, "." for
// the root.
func (n *Node) Path() string {
	if n.Parent == nil {
		return "."
	}
	var parts []string
	for m := n; m.Parent != nil; m = m.Parent {
		parts = append(parts, m.Name)
	}
	for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
		parts[i], parts[j] = parts[j], parts[i]
	}
	return strings.Join(parts, "/")
}

// File is the content of a regular file opened for reading.
type File interface {
	io.Reader
	io.ReaderAt
	io.Closer
}

type memFile struct{ *bytes.Reader }

func (memFile) Close() error { return nil }

// Open opens a regular file's content.
func (n *Node) Open() (File, error) {
	if !n.IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", n.Path())
	}
	if n.Source == "" {
		return memFile{bytes.NewReader(n.Data)}, nil
	}
	return openRaw(n.Source)
}

// ReadSegment reads the len(b) bytes of regular file n's content at off
// into b, opening and closing the source (a writer's unit of work is a
// whole small file or a segment of a large one). It reports ErrChanged
// when the content ends before off+len(b) and, when the segment reaches
// n.Size, when it goes on past it. Given one spare byte of capacity
// (cap(b) > len(b)), a file read to its end takes a single read call: a
// short read of a regular file is its end.
func (n *Node) ReadSegment(b []byte, off int64) error {
	if !n.IsRegular() {
		return fmt.Errorf("%s: not a regular file", n.Path())
	}
	end := off + int64(len(b))
	if off < 0 || end > n.Size {
		return fmt.Errorf("%s: segment %d+%d beyond size %d", n.Path(), off, len(b), n.Size)
	}
	if n.Source == "" {
		if int64(len(n.Data)) != n.Size {
			return fmt.Errorf("%s: %w (%d bytes, expected %d)", n.Path(), ErrChanged, len(n.Data), n.Size)
		}
		copy(b, n.Data[off:end])
		return nil
	}
	fd, err := rawsys.Openat(unix.AT_FDCWD, n.Source, unix.O_RDONLY|unix.O_CLOEXEC)
	if err != nil {
		return &fs.PathError{Op: "open", Path: n.Source, Err: err}
	}
	defer rawsys.Close(fd)
	want := len(b)
	var one [1]byte
	probe := end == n.Size // read one byte more, to see the end
	if probe && cap(b) > len(b) {
		b, probe = b[:len(b)+1], false // in the same call
	}
	k, err := preadFull(fd, b, off)
	if err != nil {
		return &fs.PathError{Op: "read", Path: n.Source, Err: err}
	}
	if probe && k == want {
		k, err = preadFull(fd, one[:], end)
		if err != nil {
			return &fs.PathError{Op: "read", Path: n.Source, Err: err}
		}
		k += want
	}
	switch {
	case k < want:
		return fmt.Errorf("%s: %w (size shrank)", n.Path(), ErrChanged)
	case k > want:
		return fmt.Errorf("%s: %w (size grew)", n.Path(), ErrChanged)
	}
	return nil
}

// preadFull reads into b at off until b is full or a read comes back
// short (the end of a regular file), and returns the bytes read.
func preadFull(fd int, b []byte, off int64) (int, error) {
	n := 0
	for n < len(b) {
		m, err := unix.Pread(fd, b[n:], off+int64(n))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, err
		}
		n += m
		if m == 0 || n < len(b) {
			break
		}
	}
	return n, nil
}

// rawFile reads a file through its descriptor with plain system calls.
// Writers open every file of a closure, often only to read a few KiB:
// os.Open would add several fcntl and epoll_ctl calls per file (to try
// the poller, which regular files never use) to the open and read.
// Opens, reads and closes are raw (see rawsys); positioned reads, which
// may be long, are not.
type rawFile struct {
	rawsys.Reader
}

func openRaw(path string) (*rawFile, error) {
	fd, err := rawsys.Openat(unix.AT_FDCWD, path, unix.O_RDONLY|unix.O_CLOEXEC)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return &rawFile{rawsys.Reader{Fd: fd, Path: path}}, nil
}

// ReadAt implements io.ReaderAt.
func (f *rawFile) ReadAt(b []byte, off int64) (int, error) {
	if off < 0 {
		return 0, &fs.PathError{Op: "read", Path: f.Path, Err: errors.New("negative offset")}
	}
	n := 0
	for n < len(b) {
		m, err := unix.Pread(f.Fd, b[n:], off+int64(n))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, &fs.PathError{Op: "read", Path: f.Path, Err: err}
		}
		if m == 0 {
			return n, io.EOF
		}
		n += m
	}
	return n, nil
}

// Close implements io.Closer.
func (f *rawFile) Close() error {
	if f.Fd < 0 {
		return &fs.PathError{Op: "close", Path: f.Path, Err: fs.ErrClosed}
	}
	rawsys.Close(f.Fd) // read-only: nothing to report
	f.Fd = -1
	return nil
}

// Tree is a directory tree to be written into an image: walked once,
// entries sorted by byte order, with hard-link identity and content
// digests for deduplication.
type Tree struct {
	Root *Node
	// Stats counts the tree's entries.
	Stats Stats
}

// Stats counts a tree's entries and content.
type Stats struct {
	Dirs, Files, Symlinks, Others int
	// Bytes is the total size of regular files, counting each hard-linked
	// inode once.
	Bytes int64
	// StorePaths is the number of top-level store paths, for trees built
	// by FromStorePaths.
	StorePaths int
}

// Options control how a Tree is built.
type Options struct {
	// AllRoot makes every entry owned by uid 0 and gid 0.
	AllRoot bool
	// KeepMtime keeps the source's modification times; otherwise every
	// entry gets Mtime.
	KeepMtime bool
	// Mtime is the modification time given to every entry unless
	// KeepMtime is set.
	Mtime int64
	// KeepHardLinks keeps hard links between files of the tree; by default
	// they are dereferenced (each entry its own inode) and identical
	// contents are found by digest instead, so an optimised store and a
	// plain one give the same tree.
	KeepHardLinks bool
	// Registration, when non-nil, is added at the root as
	// RegistrationName (mode 0444).
	Registration []byte
	// RootMode is the root directory's permission bits for FromStorePaths
	// (default 0755).
	RootMode fs.FileMode
	// Jobs is the number of files hashed in parallel (default: number of
	// CPUs).
	Jobs int
	// Xattrs reads extended attributes from the source (off by default:
	// store paths carry none).
	Xattrs bool
	// DedupeMin, when positive, leaves regular files smaller than that
	// out of the search for identical contents: they are not read and
	// their Same stays nil. For writers that store small files inline in
	// their metadata, where sharing their data saves nothing (EROFS: a
	// file that fits in a block with its inode); on a store most files
	// whose size collides with another's are small, each costing an open,
	// a read and a close.
	DedupeMin int64
}

// FromStorePaths builds a tree whose root holds the given store paths by
// base name, read from disk. The paths must lie directly in one directory
// (the store dir, or the physical directory of a chroot store) and are
// sorted and deduplicated.
func FromStorePaths(paths []string, opts Options) (*Tree, error) {
	b := newBuilder(opts)
	mode := opts.RootMode
	if mode == 0 {
		mode = 0o755
	}
	root := &Node{Mode: fs.ModeDir | mode, Mtime: opts.Mtime}
	seen := make(map[string]bool)
	sorted := append([]string(nil), paths...)
	sort.Slice(sorted, func(i, j int) bool { return filepath.Base(sorted[i]) < filepath.Base(sorted[j]) })
	var todo []string
	for _, p := range sorted {
		name := filepath.Base(p)
		if seen[name] {
			continue
		}
		if name == RegistrationName && opts.Registration != nil {
			return nil, fmt.Errorf("%s: conflicts with the registration file's name", p)
		}
		seen[name] = true
		todo = append(todo, p)
	}
	children, err := b.walkAll(todo, root)
	if err != nil {
		return nil, err
	}
	root.Children = children
	if opts.Registration != nil {
		root.Children = append(root.Children, &Node{
			Name: RegistrationName, Parent: root, Mode: 0o444,
			Size: int64(len(opts.Registration)), Data: opts.Registration,
			Mtime: opts.Mtime, Nlink: 1,
		})
		sortChildren(root)
	}
	t := &Tree{Root: root}
	if err := b.finish(t); err != nil {
		return nil, err
	}
	t.Stats.StorePaths = len(seen)
	return t, nil
}

// FromDir builds a tree of the directory dir and everything below it.
func FromDir(dir string, opts Options) (*Tree, error) {
	b := newBuilder(opts)
	root, err := b.walk(dir, "", nil)
	if err != nil {
		return nil, err
	}
	if !root.IsDir() {
		return nil, fmt.Errorf("%s: not a directory", dir)
	}
	if opts.Registration != nil {
		if _, ok := root.Child(RegistrationName); ok {
			return nil, fmt.Errorf("%s: already holds %s", dir, RegistrationName)
		}
		root.Children = append(root.Children, &Node{
			Name: RegistrationName, Parent: root, Mode: 0o444,
			Size: int64(len(opts.Registration)), Data: opts.Registration,
			Mtime: opts.Mtime, Nlink: 1,
		})
		sortChildren(root)
	}
	t := &Tree{Root: root}
	return t, b.finish(t)
}

// Child returns the child of directory n named name.
func (n *Node) Child(name string) (*Node, bool) {
	i := sort.Search(len(n.Children), func(i int) bool { return n.Children[i].Name >= name })
	if i < len(n.Children) && n.Children[i].Name == name {
		return n.Children[i], true
	}
	return nil, false
}

// Lookup returns the node at the slash-separated path p below the root.
func (t *Tree) Lookup(p string) (*Node, bool) {
	n := t.Root
	p = path.Clean(p)
	if p == "." || p == "/" {
		return n, true
	}
	for _, part := range strings.Split(strings.TrimPrefix(p, "/"), "/") {
		c, ok := n.Child(part)
		if !ok {
			return nil, false
		}
		n = c
	}
	return n, true
}

// Walk calls fn for every node in depth-first pre-order, children in byte
// order: the order writers lay out the image in. If fn returns
// fs.SkipDir for a directory, its children are skipped.
func (t *Tree) Walk(fn func(n *Node) error) error {
	return walkNode(t.Root, fn)
}

func walkNode(n *Node, fn func(n *Node) error) error {
	if err := fn(n); err != nil {
		if err == fs.SkipDir && n.IsDir() {
			return nil
		}
		return err
	}
	for _, c := range n.Children {
		if err := walkNode(c, fn); err != nil {
			return err
		}
	}
	return nil
}

// Files returns the regular files in walk order.
func (t *Tree) Files() []*Node {
	var files []*Node
	t.Walk(func(n *Node) error {
		if n.IsRegular() {
			files = append(files, n)
		}
		return nil
	})
	return files
}

func sortChildren(n *Node) {
	sort.Slice(n.Children, func(i, j int) bool { return n.Children[i].Name < n.Children[j].Name })
}

type devIno struct{ dev, ino uint64 }

type builder struct {
	opts Options
}

func newBuilder(opts Options) *builder {
	return &builder{opts: opts}
}

// walkAll walks the store paths paths (in order) below root, each on one
// of the builder's workers: the walk is a stream of short system calls,
// and store paths are independent subtrees. It returns their nodes in
// order, or the error of the first path that fails.
func (b *builder) walkAll(paths []string, root *Node) ([]*Node, error) {
	nodes := make([]*Node, len(paths))
	errs := make([]error, len(paths))
	jobs := b.opts.Jobs
	if jobs <= 0 {
		jobs = runtime.NumCPU()
	}
	jobs = min(jobs, len(paths))
	var next atomic.Int64
	var failed atomic.Bool
	var wg sync.WaitGroup
	for range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var w walker
			for !failed.Load() {
				i := int(next.Add(1) - 1)
				if i >= len(paths) {
					return
				}
				p := paths[i]
				nodes[i], errs[i] = w.walk(b, unix.AT_FDCWD, p, p, filepath.Base(p), root)
				if errs[i] != nil {
					failed.Store(true)
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return nodes, nil
}

// walk builds the node for the file at p, named name, below parent.
func (b *builder) walk(p, name string, parent *Node) (*Node, error) {
	var w walker
	return w.walk(b, unix.AT_FDCWD, p, p, name, parent)
}

// walker walks one subtree: system calls are made relative to the open
// parent directory (shorter lookups than full paths) and raw (see
// rawsys: a closure has tens of thousands of entries, each a short call).
type walker struct {
	dbuf []byte // getdents buffer
}

// walk builds the node for the entry at (relative to dirfd) whose path
// is p, named name, below parent.
func (w *walker) walk(b *builder, dirfd int, at, p, name string, parent *Node) (*Node, error) {
	st := new(syscall.Stat_t)
	if err := rawsys.Fstatat(dirfd, at, st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil, &fs.PathError{Op: "lstat", Path: p, Err: err}
	}
	mode := FileMode(st.Mode)
	n := &Node{
		Name:   name,
		Parent: parent,
		Mode:   mode,
		UID:    st.Uid,
		GID:    st.Gid,
		Mtime:  b.opts.Mtime,
		Nlink:  1,
		dev:    st.Dev,
		ino:    st.Ino,
	}
	if b.opts.KeepMtime {
		n.Mtime = st.Mtim.Sec
	}
	if b.opts.AllRoot {
		n.UID, n.GID = 0, 0
	}
	var err error
	if b.opts.Xattrs {
		if n.Xattrs, err = readXattrs(p); err != nil {
			return nil, err
		}
	}
	switch {
	case mode.IsRegular():
		n.Size = st.Size
		n.Source = p
		// Linked in walk order by finish.
		n.linked = b.opts.KeepHardLinks && st.Nlink > 1
	case mode&fs.ModeSymlink != 0:
		if n.Target, err = rawsys.Readlinkat(dirfd, at); err != nil {
			return nil, &fs.PathError{Op: "readlink", Path: p, Err: err}
		}
		n.Size = int64(len(n.Target))
	case mode.IsDir():
		fd, err := rawsys.Openat(dirfd, at, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC)
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: p, Err: err}
		}
		defer rawsys.Close(fd)
		names, err := w.readDirNames(fd)
		if err != nil {
			return nil, &fs.PathError{Op: "readdir", Path: p, Err: err}
		}
		n.Nlink = 2
		n.Children = make([]*Node, 0, len(names))
		for _, e := range names {
			c, err := w.walk(b, fd, e, filepath.Join(p, e), e, n)
			if err != nil {
				return nil, err
			}
			if c.IsDir() {
				n.Nlink++
			}
			n.Children = append(n.Children, c)
		}
	case mode&(fs.ModeDevice|fs.ModeCharDevice) != 0:
		n.Rdev = st.Rdev
	}
	return n, nil
}

// readDirNames returns the names in the directory open as fd, without .
// and .., sorted by byte order.
func (w *walker) readDirNames(fd int) ([]string, error) {
	if w.dbuf == nil {
		w.dbuf = make([]byte, 32<<10)
	}
	var names []string
	err := rawsys.ReadDir(fd, w.dbuf, func(name []byte, _ byte) {
		names = append(names, string(name))
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	return names, nil
}

// finish counts the tree, sets root nlink, and digests files whose size
// collides with another file's size to find identical contents.
func (b *builder) finish(t *Tree) error {
	root := t.Root
	root.Nlink = 2
	for _, c := range root.Children {
		if c.IsDir() {
			root.Nlink++
		}
	}
	bySize := make(map[int64][]*Node)
	var order []*Node
	links := make(map[devIno]*Node) // first node of each multiply linked inode
	t.Walk(func(n *Node) error {
		if n.linked {
			k := devIno{n.dev, n.ino}
			if first, ok := links[k]; ok {
				n.Link = first
				first.Nlink++
			} else {
				links[k] = n
			}
		}
		switch {
		case n.IsDir():
			t.Stats.Dirs++
		case n.IsSymlink():
			t.Stats.Symlinks++
		case n.IsRegular():
			t.Stats.Files++
			if n.Link == nil {
				t.Stats.Bytes += n.Size
				if n.Size > 0 && n.Size >= b.opts.DedupeMin {
					if len(bySize[n.Size]) == 0 {
						order = append(order, n)
					}
					bySize[n.Size] = append(bySize[n.Size], n)
				}
			}
		default:
			t.Stats.Others++
		}
		return nil
	})
	// Hash every file that shares its size with another, once per source
	// inode.
	var todo []*Node
	for _, first := range order {
		if group := bySize[first.Size]; len(group) > 1 {
			todo = append(todo, group...)
		}
	}
	if err := hashAll(todo, b.opts.Jobs); err != nil {
		return err
	}
	for _, first := range order {
		group := bySize[first.Size]
		if len(group) < 2 {
			continue
		}
		firstOf := make(map[[32]byte]*Node)
		for _, n := range group { // group is in walk order
			if f, ok := firstOf[n.Digest]; ok {
				n.Same = f
			} else {
				firstOf[n.Digest] = n
			}
		}
	}
	return nil
}

// hashAll sets Digest on every node, hashing each source inode once.
func hashAll(nodes []*Node, jobs int) error {
	if jobs <= 0 {
		jobs = runtime.NumCPU()
	}
	type job struct{ nodes []*Node }
	var jobsList []job
	index := make(map[devIno]int) // position in jobsList of each source inode
	for _, n := range nodes {
		if n.Source == "" {
			jobsList = append(jobsList, job{[]*Node{n}})
			continue
		}
		k := devIno{n.dev, n.ino}
		if i, ok := index[k]; ok {
			jobsList[i].nodes = append(jobsList[i].nodes, n)
			continue
		}
		index[k] = len(jobsList)
		jobsList = append(jobsList, job{[]*Node{n}})
	}
	// Workers take the next job by index: a channel hand-off per file
	// (tens of thousands of small files) kept the two workers of a
	// two-core machine waiting for each other and for the sender.
	var next atomic.Int64
	var failed atomic.Bool
	errs := make([]error, jobs)
	var wg sync.WaitGroup
	for w := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 256<<10)
			for !failed.Load() {
				i := int(next.Add(1) - 1)
				if i >= len(jobsList) {
					return
				}
				j := jobsList[i]
				d, err := digest(j.nodes[0], buf)
				if err != nil {
					errs[w] = err
					failed.Store(true)
					return
				}
				for _, n := range j.nodes {
					n.Digest, n.HasDigest = d, true
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func digest(n *Node, buf []byte) ([32]byte, error) {
	if n.Size < int64(len(buf)) {
		// Most files: one read call (see ReadSegment).
		b := buf[:n.Size]
		if err := n.ReadSegment(b, 0); err != nil {
			return [32]byte{}, err
		}
		return sha256.Sum256(b), nil
	}
	f, err := n.Open()
	if err != nil {
		return [32]byte{}, err
	}
	defer f.Close()
	h := sha256.New()
	m, err := io.CopyBuffer(h, io.LimitReader(f, n.Size+1), buf)
	if err != nil {
		return [32]byte{}, fmt.Errorf("%s: %w", n.Source, err)
	}
	if m != n.Size {
		return [32]byte{}, fmt.Errorf("%s: size changed while reading (%d bytes, expected %d)", n.Source, m, n.Size)
	}
	var d [32]byte
	h.Sum(d[:0])
	return d, nil
}

// ErrChanged reports that a source file changed while an image was being
// written.
var ErrChanged = errors.New("file changed while reading")
