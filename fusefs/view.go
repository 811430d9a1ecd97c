package fusefs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/closurefs/closurefs/closure"
	"github.com/closurefs/closurefs/internal/rawsys"
	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// Extended attributes the closure view sets on each top-level store path.
const (
	XattrNarHash    = "user.nix.nar-hash"   // "sha256:" + nix-base32 digest
	XattrNarSize    = "user.nix.nar-size"   // decimal
	XattrReferences = "user.nix.references" // full store paths, one per line
	XattrReferrers  = "user.nix.referrers"  // within the view, one per line
)

// ViewOptions configures a closure view.
type ViewOptions struct {
	// StoreDir is the store directory shown, e.g. /nix/store.
	StoreDir string
	// ReadDir is the physical directory holding the store paths (default
	// StoreDir), e.g. a chroot store's or a copy's.
	ReadDir string
	// Source resolves closures of store paths.
	Source closure.Source
	// Roots are the roots as given: store paths, or symlinks leading into
	// the store (result links, profiles, /run/current-system), which are
	// watched.
	Roots []string
	// NoPassthrough disables kernel FUSE passthrough for open files.
	NoPassthrough bool
	// KernelCache opens files without asking the daemon (the first OPEN
	// is answered ENOSYS) and serves their contents from the page cache
	// of the mount: after the first read of a file, reads never reach the
	// daemon. It implies NoPassthrough. A file deleted from the store
	// while open stays readable only as far as it was read before.
	KernelCache bool
	// Interval is how often roots and store paths are checked (default
	// 200ms).
	Interval time.Duration
	// Logf, if set, receives one line per change of the view.
	Logf func(format string, args ...any)
}

// RootStatus is one root of a view.
type RootStatus struct {
	Arg       string `json:"arg"`                 // as given
	StorePath string `json:"storePath,omitempty"` // where it leads now
	Error     string `json:"error,omitempty"`     // why it leads nowhere, or why its closure is left out
}

// sameTarget reports whether a and b are one root leading to the same
// place (their closures' errors aside).
func sameTarget(a, b RootStatus) bool {
	return a.Arg == b.Arg && a.StorePath == b.StorePath && (a.StorePath != "" || a.Error == b.Error)
}

// viewState is one immutable version of the view.
type viewState struct {
	gen       uint64
	closure   *closure.Closure
	index     map[string]int // base name -> index in closure.Paths
	referrers [][]string     // per index, sorted full paths
	modes     []uint32       // per index, st_mode at computation time
	roots     []RootStatus
	at        time.Time
}

// View is a live closure view: a FUSE file system whose root lists exactly
// the closure of the roots, each store path a read-only loopback of the
// store. It follows root symlinks and garbage collection.
type View struct {
	opts   ViewOptions
	root   *viewRoot
	state  atomic.Pointer[viewState]
	mu     sync.Mutex // serialises recomputation and root changes
	roots  []string
	stop   chan struct{}
	done   chan struct{}
	mountd atomic.Bool
	// passthrough reports whether open files use kernel passthrough.
	passthrough atomic.Bool
	rootDev     uint64
	// server is the mount's server, for registering backing files;
	// hooked reports that OPEN replies pass on the IDs Open leaves in
	// pending (see backing.go).
	server  atomic.Pointer[fuse.Server]
	hooked  atomic.Bool
	pending sync.Map // request cancel channel -> backing ID (int32)
	// lastErr is the last recomputation error logged, so that a root
	// that stays broken is logged once, not at every check.
	lastErr string
	// retryAt is when roots left out are next tried again.
	retryAt time.Time
}

// leftOutRetry is how often roots left out of the view are tried again.
const leftOutRetry = 5 * time.Second

// NewView computes the initial closure of opts.Roots and returns the view.
func NewView(opts ViewOptions) (*View, error) {
	if opts.Interval <= 0 {
		opts.Interval = 200 * time.Millisecond
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	if opts.ReadDir == "" {
		opts.ReadDir = opts.StoreDir
	}
	var st syscall.Stat_t
	if err := syscall.Stat(opts.ReadDir, &st); err != nil {
		return nil, fmt.Errorf("store directory: %w", err)
	}
	v := &View{opts: opts, roots: slices.Clone(opts.Roots), stop: make(chan struct{}), done: make(chan struct{}), rootDev: st.Dev}
	v.root = &viewRoot{v: v}
	v.passthrough.Store(!opts.NoPassthrough && !opts.KernelCache)
	// At the start every root must lead to an existing store path; later
	// a dangling root just leaves the view (until it leads somewhere).
	rs, _ := v.resolveRoots(v.roots)
	for _, r := range rs {
		if r.Error != "" {
			return nil, fmt.Errorf("root %s: %s", r.Arg, r.Error)
		}
	}
	s, err := v.compute(v.roots, 0)
	if err != nil {
		return nil, err
	}
	for _, r := range s.roots {
		if r.Error != "" {
			return nil, fmt.Errorf("root %s: %s", r.Arg, r.Error)
		}
	}
	v.state.Store(s)
	return v, nil
}

// Root returns the root node to mount.
func (v *View) Root() gofs.InodeEmbedder { return v.root }

// RootStableAttr returns the root's stable attributes (the store
// directory's inode number).
func (v *View) RootStableAttr() *gofs.StableAttr {
	var st syscall.Stat_t
	syscall.Stat(v.opts.ReadDir, &st)
	return &gofs.StableAttr{Mode: syscall.S_IFDIR, Ino: v.ino(&st)}
}

// ino maps a stat result to the inode number shown, mixing in the device
// for files on other file systems than the store's.
func (v *View) ino(st *syscall.Stat_t) uint64 {
	if st.Dev == v.rootDev {
		return st.Ino
	}
	d := st.Dev ^ v.rootDev
	return st.Ino ^ (d<<32 | d>>32)
}

// readDir returns where the store paths are read from if not the store
// directory, else "".
func (v *View) readDir() string {
	if v.opts.ReadDir == v.opts.StoreDir {
		return ""
	}
	return v.opts.ReadDir
}

// physical returns where the store path p lies: in ReadDir.
func (v *View) physical(p string) string {
	return filepath.Join(v.opts.ReadDir, filepath.Base(p))
}

// ResolveRoot maps a root argument to a store path: lexically if it names
// something inside storeDir (a store path that is a symlink is not
// followed), else by following symlinks.
func ResolveRoot(storeDir, arg string) (string, error) {
	if abs, err := filepath.Abs(arg); err == nil && strings.HasPrefix(abs, storeDir+"/") {
		return closure.ToStorePath(storeDir, abs)
	}
	return closure.FollowLinksToStorePath(storeDir, arg)
}

// resolveRoots resolves root arguments, skipping those that lead nowhere
// or to a store path that does not exist.
func (v *View) resolveRoots(args []string) ([]RootStatus, []string) {
	var rs []RootStatus
	var paths []string
	for _, a := range args {
		r := RootStatus{Arg: a}
		p, err := ResolveRoot(v.opts.StoreDir, a)
		if err == nil {
			_, err = os.Lstat(v.physical(p))
		}
		if err != nil {
			r.Error = err.Error()
		} else {
			r.StorePath = p
			paths = append(paths, p)
		}
		rs = append(rs, r)
	}
	slices.Sort(paths)
	return rs, slices.Compact(paths)
}

// compute resolves roots and builds a new state, leaving out store paths
// that no longer exist. A root the source does not know (a path the
// database does not hold, one outside a registration: ErrUnknownPath) is
// left out, with the reason in its status, so that the other roots are
// still followed. Any other error of the source is returned: the view
// keeps its state and tries again.
func (v *View) compute(args []string, gen uint64) (*viewState, error) {
	rs, paths := v.resolveRoots(args)
	c := &closure.Closure{StoreDir: v.opts.StoreDir}
	if len(paths) > 0 {
		var err error
		c, err = v.opts.Source.Resolve(paths)
		if err != nil {
			// Find the roots at fault and resolve the others.
			bad := map[string]string{}
			var good []string
			for _, p := range paths {
				_, perr := v.opts.Source.Resolve([]string{p})
				switch {
				case perr == nil:
					good = append(good, p)
				case errors.Is(perr, closure.ErrUnknownPath):
					bad[p] = perr.Error()
				default:
					return nil, err
				}
			}
			if len(bad) == 0 {
				return nil, err
			}
			for i := range rs {
				if e, ok := bad[rs[i].StorePath]; ok {
					rs[i].Error = e
				}
			}
			c = &closure.Closure{StoreDir: v.opts.StoreDir}
			if len(good) > 0 {
				if c, err = v.opts.Source.Resolve(good); err != nil {
					return nil, err
				}
			}
		}
	}
	s := &viewState{gen: gen, roots: rs, at: time.Now(), index: make(map[string]int, len(c.Paths))}
	kept := c.Paths[:0:0]
	for _, p := range c.Paths {
		var st syscall.Stat_t
		if err := syscall.Lstat(v.physical(p.Path), &st); err != nil {
			continue
		}
		s.modes = append(s.modes, st.Mode)
		kept = append(kept, p)
	}
	nc := *c
	nc.Paths = kept
	s.closure = &nc
	for i, p := range kept {
		s.index[filepath.Base(p.Path)] = i
	}
	s.referrers = make([][]string, len(kept))
	for _, p := range kept {
		for _, r := range p.References {
			if i, ok := s.index[filepath.Base(r)]; ok {
				s.referrers[i] = append(s.referrers[i], p.Path)
			}
		}
	}
	return s, nil
}

// Closure returns the closure the view shows now.
func (v *View) Closure() *closure.Closure { return v.state.Load().closure }

// Roots returns the roots and where they lead now.
func (v *View) Roots() []RootStatus { return slices.Clone(v.state.Load().roots) }

// Generation counts the view's switches.
func (v *View) Generation() uint64 { return v.state.Load().gen }

// Passthrough reports whether open files are served by kernel passthrough.
func (v *View) Passthrough() bool { return v.passthrough.Load() }

// SetPassthrough chooses whether files opened from now on are offered to
// the kernel for passthrough.
func (v *View) SetPassthrough(on bool) { v.passthrough.Store(on) }

// AddRoot adds a root and switches the view to the new closure. A root
// whose closure the source cannot give is refused.
func (v *View) AddRoot(arg string) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, err := ResolveRoot(v.opts.StoreDir, arg); err != nil {
		return err
	}
	if slices.Contains(v.roots, arg) {
		return fmt.Errorf("%s is already a root", arg)
	}
	roots := append(slices.Clone(v.roots), arg)
	s, err := v.compute(roots, v.state.Load().gen+1)
	if err != nil {
		return err
	}
	if r := s.roots[len(s.roots)-1]; r.Error != "" {
		return fmt.Errorf("root %s: %s", arg, r.Error)
	}
	v.install(roots, s, "root added: "+arg)
	return nil
}

// RemoveRoot removes a root and switches the view to the new closure.
func (v *View) RemoveRoot(arg string) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	i := slices.Index(v.roots, arg)
	if i < 0 {
		return fmt.Errorf("%s is not a root (roots: %s)", arg, strings.Join(v.roots, " "))
	}
	return v.switchTo(slices.Delete(slices.Clone(v.roots), i, i+1), "root removed: "+arg)
}

// switchTo computes the closure of roots and makes it the view's. v.mu
// must be held.
func (v *View) switchTo(roots []string, why string) error {
	s, err := v.compute(roots, v.state.Load().gen+1)
	if err != nil {
		return err
	}
	v.install(roots, s, why)
	return nil
}

// install makes s, computed from roots, the view's state. v.mu must be
// held.
func (v *View) install(roots []string, s *viewState, why string) {
	old := v.state.Load()
	v.roots = roots
	v.state.Store(s)
	v.invalidate(old, s)
	v.lastErr = ""
	v.opts.Logf("view switched (%s): %d store paths (was %d)", why, len(s.closure.Paths), len(old.closure.Paths))
	for _, r := range s.roots {
		if r.StorePath != "" && r.Error != "" {
			v.opts.Logf("root %s -> %s left out: %s", r.Arg, r.StorePath, r.Error)
		}
	}
}

// invalidate drops the kernel's cached entries for names that entered or
// left the view.
func (v *View) invalidate(old, s *viewState) {
	if !v.mountd.Load() {
		return
	}
	var changed []string
	for name := range old.index {
		if _, ok := s.index[name]; !ok {
			changed = append(changed, name)
		}
	}
	for name := range s.index {
		if _, ok := old.index[name]; !ok {
			changed = append(changed, name)
		}
	}
	sort.Strings(changed)
	for _, name := range changed {
		if _, ok := s.index[name]; !ok {
			v.root.RmChild(name)
		}
		v.root.NotifyEntry(name)
	}
	v.root.NotifyContent(0, 0)
}

// Watch checks roots and store paths every Interval until Close, switching
// the view when a root now leads elsewhere or a store path of the view
// disappeared. Roots are resolved at every check; store paths are
// checked when inotify reports entries leaving the store directory (all
// of them after a switch, or if inotify is unavailable or loses events).
// Call it after mounting.
func (v *View) Watch() {
	v.mountd.Store(true)
	defer close(v.done)
	w := newStoreWatch(v.opts.ReadDir)
	defer func() {
		if w != nil {
			w.close()
		}
	}()
	t := time.NewTicker(v.opts.Interval)
	defer t.Stop()
	full := true // the first check looks at every store path
	for {
		select {
		case <-v.stop:
			return
		case <-t.C:
		}
		var gone []string
		if w != nil {
			var all bool
			gone, all = w.removed()
			full = full || all
			if w.dead {
				w.close()
				w = nil
			}
		} else {
			full = true
		}
		full = v.check(full, gone)
	}
}

// check compares the roots and store paths with the current state: all
// store paths if full, else those named in gone (base names that left
// the store directory). It reports whether the next check must look at
// all store paths (after a switch: paths of the new closure may have
// left before it was computed).
func (v *View) check(full bool, gone []string) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	s := v.state.Load()
	rs, _ := v.resolveRoots(v.roots)
	why := ""
	for i := range rs {
		if i >= len(s.roots) || !sameTarget(rs[i], s.roots[i]) {
			why = "root " + rs[i].Arg + " changed"
			if rs[i].StorePath != "" {
				why += " to " + rs[i].StorePath
			} else {
				why += ": " + rs[i].Error
			}
			break
		}
	}
	// A root left out because the source did not know its path is tried
	// again now and then: the database may have learnt of it.
	if why == "" && time.Now().After(v.retryAt) {
		v.retryAt = time.Now().Add(leftOutRetry)
		for _, r := range s.roots {
			if r.StorePath != "" && r.Error != "" {
				if _, err := v.opts.Source.Resolve([]string{r.StorePath}); err == nil {
					why = "root " + r.Arg + ": " + r.StorePath + " is known now"
					break
				}
			}
		}
	}
	missing := func(p string) bool {
		_, err := os.Lstat(v.physical(p))
		return errors.Is(err, os.ErrNotExist)
	}
	if why == "" && full {
		for _, p := range s.closure.Paths {
			if missing(p.Path) {
				why = p.Path + " disappeared"
				break
			}
		}
	}
	if why == "" && !full {
		for _, name := range gone {
			if i, ok := s.index[name]; ok && missing(s.closure.Paths[i].Path) {
				why = s.closure.Paths[i].Path + " disappeared"
				break
			}
		}
	}
	if why == "" {
		return false
	}
	if err := v.switchTo(v.roots, why); err != nil {
		// Logged once while it lasts; the next checks try again.
		if msg := err.Error(); msg != v.lastErr {
			v.lastErr = msg
			v.opts.Logf("recomputing the closure (%s): %v", why, err)
		}
	}
	return true
}

// Close stops watching.
func (v *View) Close() {
	select {
	case <-v.stop:
	default:
		close(v.stop)
	}
	if v.mountd.Load() {
		<-v.done
	}
}

// viewRoot is the root directory: the store paths of the closure.
type viewRoot struct {
	gofs.Inode
	v *View
}

var (
	_ gofs.NodeLookuper   = (*viewRoot)(nil)
	_ gofs.NodeReaddirer  = (*viewRoot)(nil)
	_ gofs.NodeGetattrer  = (*viewRoot)(nil)
	_ gofs.NodeStatfser   = (*viewRoot)(nil)
	_ gofs.NodeGetxattrer = (*viewRoot)(nil)
)

// Lookup finds a store path of the closure; any other name is ENOENT.
func (r *viewRoot) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	s := r.v.state.Load()
	if _, ok := s.index[name]; !ok {
		return nil, syscall.ENOENT
	}
	return lookupStore(ctx, r.v, &r.Inode, filepath.Join(r.v.opts.ReadDir, name), true, out)
}

// Readdir lists "." and ".." and the closure's store paths. The dot
// entries also keep the listing from being empty: the kernel keeps a
// directory's listing in its cache (see cachedDirs) and, for an empty one,
// finds nothing to invalidate when the view switches.
func (r *viewRoot) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	s := r.v.state.Load()
	ents := make([]fuse.DirEntry, 0, len(s.closure.Paths)+2)
	ino := r.StableAttr().Ino
	ents = append(ents, fuse.DirEntry{Name: ".", Mode: syscall.S_IFDIR, Ino: ino}, fuse.DirEntry{Name: "..", Mode: syscall.S_IFDIR, Ino: ino})
	for i, p := range s.closure.Paths {
		ents = append(ents, fuse.DirEntry{Name: filepath.Base(p.Path), Mode: s.modes[i] & syscall.S_IFMT})
	}
	return gofs.NewListDirStream(ents), 0
}

// Getattr returns the store directory's attributes, read-only.
func (r *viewRoot) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	var st syscall.Stat_t
	if err := syscall.Stat(r.v.opts.ReadDir, &st); err != nil {
		return gofs.ToErrno(err)
	}
	out.FromStat(&st)
	out.Ino = r.v.ino(&st)
	out.Mode &^= 0o222 | syscall.S_ISVTX
	out.Nlink = 2
	out.SetTimeout(time.Second)
	return 0
}

// Getxattr: the root has none.
func (r *viewRoot) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	return 0, syscall.ENODATA
}

// Statfs reports the store's file system.
func (r *viewRoot) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	return statfs(r.v.opts.ReadDir, out)
}

func statfs(p string, out *fuse.StatfsOut) syscall.Errno {
	var s syscall.Statfs_t
	if err := syscall.Statfs(p, &s); err != nil {
		return gofs.ToErrno(err)
	}
	out.FromStatfsT(&s)
	return 0
}

// storeNode is a file, directory or symlink below a store path.
type storeNode struct {
	gofs.Inode
	v    *View
	path string // physical path
	top  bool   // a store path itself

	bmu     sync.Mutex
	backing int32 // the registered backing file's ID, 0 if none
}

var (
	_ gofs.NodeLookuper       = (*storeNode)(nil)
	_ gofs.NodeGetattrer      = (*storeNode)(nil)
	_ gofs.NodeReadlinker     = (*storeNode)(nil)
	_ gofs.NodeOpener         = (*storeNode)(nil)
	_ gofs.NodeReader         = (*storeNode)(nil)
	_ gofs.NodeOpendirHandler = (*storeNode)(nil)
	_ gofs.NodeGetxattrer     = (*storeNode)(nil)
	_ gofs.NodeListxattrer    = (*storeNode)(nil)
	_ gofs.NodeStatfser       = (*storeNode)(nil)
)

// lookupStore makes the node for the physical path p, a child of parent.
func lookupStore(ctx context.Context, v *View, parent *gofs.Inode, p string, top bool, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	var st syscall.Stat_t
	if err := rawsys.Lstat(p, &st); err != nil {
		return nil, gofs.ToErrno(err)
	}
	return newStoreChild(ctx, v, parent, p, top, &st, out), 0
}

// newStoreChild makes the node for the physical path p, a child of parent,
// whose lstat result is st.
func newStoreChild(ctx context.Context, v *View, parent *gofs.Inode, p string, top bool, st *syscall.Stat_t, out *fuse.EntryOut) *gofs.Inode {
	out.Attr.FromStat(st)
	out.Attr.Ino = v.ino(st)
	n := &storeNode{v: v, path: p, top: top}
	return parent.NewInode(ctx, n, gofs.StableAttr{Mode: st.Mode & syscall.S_IFMT, Ino: out.Attr.Ino})
}

// Lookup finds a name in a directory of the store.
func (n *storeNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return lookupStore(ctx, n.v, &n.Inode, filepath.Join(n.path, name), false, out)
}

// Getattr stats the physical path.
func (n *storeNode) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	var st syscall.Stat_t
	if err := rawsys.Lstat(n.path, &st); err != nil {
		return gofs.ToErrno(err)
	}
	out.FromStat(&st)
	out.Ino = n.v.ino(&st)
	return 0
}

// Readlink returns a symlink's target as it is.
func (n *storeNode) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		k, err := syscall.Readlink(n.path, buf)
		if err != nil {
			return nil, gofs.ToErrno(err)
		}
		if k < size {
			return buf[:k], 0
		}
	}
}

// roFile is an open store file read by the daemon.
type roFile struct{ fd int }

// ptFile is an open store file the kernel reads directly (passthrough).
type ptFile struct{ roFile }

// PassthroughFd hands the file to the kernel.
func (f *ptFile) PassthroughFd() (int, bool) { return f.fd, true }

// Read reads by splicing from the file where the reply fits a pipe, and
// by copying otherwise.
func (f *roFile) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if len(dest) <= spliceMax() {
		return fuse.ReadResultFd(uintptr(f.fd), off, len(dest)), 0
	}
	return preadResult(f.fd, dest, off)
}

// preadResult answers a read of fd at off with a copy into dest.
func preadResult(fd int, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	k, err := syscall.Pread(fd, dest, off)
	if err != nil {
		return nil, gofs.ToErrno(err)
	}
	return dataResult(dest[:k]), 0
}

// Getattr fstats the open file.
func (f *roFile) Getattr(ctx context.Context, out *fuse.AttrOut) syscall.Errno {
	var st syscall.Stat_t
	if err := syscall.Fstat(f.fd, &st); err != nil {
		return gofs.ToErrno(err)
	}
	out.FromStat(&st)
	return 0
}

// Lseek supports SEEK_DATA and SEEK_HOLE.
func (f *roFile) Lseek(ctx context.Context, off uint64, whence uint32) (uint64, syscall.Errno) {
	n, err := unix.Seek(f.fd, int64(off), int(whence))
	return uint64(n), gofs.ToErrno(err)
}

// Release closes the file.
func (f *roFile) Release(ctx context.Context) syscall.Errno {
	return gofs.ToErrno(syscall.Close(f.fd))
}

// Open opens a store file read-only; writes fail with EROFS. With
// KernelCache it answers ENOSYS: the kernel then opens files itself from
// now on and reads them with no handle (see Read).
func (n *storeNode) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if flags&(syscall.O_WRONLY|syscall.O_RDWR|syscall.O_TRUNC|syscall.O_APPEND|syscall.O_CREAT) != 0 {
		return nil, 0, syscall.EROFS
	}
	if n.v.opts.KernelCache {
		return nil, 0, syscall.ENOSYS
	}
	if n.v.passthrough.Load() {
		if f, ok := n.openShared(ctx); ok {
			return f, 0, 0
		}
	}
	fd, err := syscall.Open(n.path, syscall.O_RDONLY|syscall.O_CLOEXEC|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, 0, gofs.ToErrno(err)
	}
	if n.v.passthrough.Load() {
		return &ptFile{roFile{fd}}, fuse.FOPEN_KEEP_CACHE, 0
	}
	return &roFile{fd}, fuse.FOPEN_KEEP_CACHE, 0
}

// Read reads through the handle Open returned or, for a file the kernel
// opened itself (KernelCache), by opening the store file for this read.
func (n *storeNode) Read(ctx context.Context, fh gofs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	switch f := fh.(type) {
	case *roFile:
		return f.Read(ctx, dest, off)
	case *ptFile:
		return f.Read(ctx, dest, off)
	case *sharedPT:
		fh = nil
	}
	fd, err := syscall.Open(n.path, syscall.O_RDONLY|syscall.O_CLOEXEC|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, gofs.ToErrno(err)
	}
	defer syscall.Close(fd)
	return preadResult(fd, dest, off)
}

// Flush: nothing to flush; ENOSYS stops the kernel from sending FLUSH on
// every close.
func (n *storeNode) Flush(ctx context.Context, f gofs.FileHandle) syscall.Errno {
	return syscall.ENOSYS
}

// OpendirHandle opens a store directory for listing. The directory itself
// is opened on the first READDIR only: once the kernel has cached a
// listing, an opendir costs no system call here.
func (n *storeNode) OpendirHandle(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	return &storeDir{n: n, fd: -1}, fuse.FOPEN_KEEP_CACHE | fuse.FOPEN_CACHE_DIR, 0
}

// storeDir is an open store directory, listed with getdents.
type storeDir struct {
	n  *storeNode
	fd int            // the directory, open from the first READDIR
	ds gofs.DirStream // reads fd
}

var (
	_ gofs.FileReaddirenter = (*storeDir)(nil)
	_ gofs.FileSeekdirer    = (*storeDir)(nil)
	_ gofs.FileReleasedirer = (*storeDir)(nil)
	_ gofs.FileLookuper     = (*storeDir)(nil)
)

func (d *storeDir) stream() (gofs.DirStream, syscall.Errno) {
	if d.ds == nil {
		fd, err := syscall.Open(d.n.path, syscall.O_DIRECTORY|syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err != nil {
			return nil, gofs.ToErrno(err)
		}
		ds, errno := gofs.NewLoopbackDirStreamFd(fd)
		if errno != 0 {
			syscall.Close(fd)
			return nil, errno
		}
		d.ds, d.fd = ds, fd
	}
	return d.ds, 0
}

// Lookup serves READDIRPLUS: it stats the entry relative to the open
// directory, which spares the kernel walking the whole path again.
func (d *storeDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if d.fd < 0 {
		return d.n.Lookup(ctx, name, out)
	}
	var st syscall.Stat_t
	if err := rawsys.Fstatat(d.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil, gofs.ToErrno(err)
	}
	return newStoreChild(ctx, d.n.v, &d.n.Inode, filepath.Join(d.n.path, name), false, &st, out), 0
}

// Readdirent returns the next entry.
func (d *storeDir) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	ds, errno := d.stream()
	if errno != 0 {
		return nil, errno
	}
	return ds.(gofs.FileReaddirenter).Readdirent(ctx)
}

// Seekdir moves to an offset Readdirent returned.
func (d *storeDir) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	ds, errno := d.stream()
	if errno != 0 {
		return errno
	}
	return ds.(gofs.FileSeekdirer).Seekdir(ctx, off)
}

// Releasedir closes the directory.
func (d *storeDir) Releasedir(ctx context.Context, flags uint32) {
	if d.ds != nil {
		d.ds.Close()
	}
}

// nixXattrs returns the user.nix.* attributes of a top-level store path.
func (n *storeNode) nixXattrs() map[string][]byte {
	if !n.top {
		return nil
	}
	s := n.v.state.Load()
	i, ok := s.index[filepath.Base(n.path)]
	if !ok {
		return nil
	}
	p := s.closure.Paths[i]
	return map[string][]byte{
		XattrNarHash:    []byte(closure.FormatHash(p.NarHash, closure.HashBase32, true)),
		XattrNarSize:    []byte(strconv.FormatUint(p.NarSize, 10)),
		XattrReferences: []byte(strings.Join(p.References, "\n")),
		XattrReferrers:  []byte(strings.Join(s.referrers[i], "\n")),
	}
}

// Getxattr returns a user.nix.* attribute, or the store file's own.
func (n *storeNode) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	if v, ok := n.nixXattrs()[attr]; ok {
		return copyOut(dest, v)
	}
	sz, err := unix.Lgetxattr(n.path, attr, dest)
	if err != nil {
		return 0, gofs.ToErrno(err)
	}
	return uint32(sz), 0
}

// Listxattr lists the user.nix.* attributes and the store file's own.
func (n *storeNode) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	var b []byte
	if xs := n.nixXattrs(); xs != nil {
		for _, k := range []string{XattrNarHash, XattrNarSize, XattrReferences, XattrReferrers} {
			b = append(append(b, k...), 0)
		}
	}
	if sz, err := unix.Llistxattr(n.path, nil); err == nil && sz > 0 {
		own := make([]byte, sz)
		if sz, err = unix.Llistxattr(n.path, own); err == nil {
			b = append(b, bytes.TrimRight(own[:sz], "\x00")...)
			b = append(b, 0)
		}
	}
	return copyOut(dest, b)
}

// Statfs reports the store's file system.
func (n *storeNode) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	return statfs(n.v.opts.ReadDir, out)
}
