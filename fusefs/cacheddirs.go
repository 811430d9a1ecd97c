package fusefs

import (
	"sync"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// cachedDirs wraps a node file system whose directory listings change
// only with an explicit invalidation, so that the kernel never sends
// OPENDIR or RELEASEDIR. Its OPENDIR answers ENOSYS,
// which the kernel takes as "zero-message opendir" for the rest of the
// connection: it then opens directories itself, with their listings kept
// in its page cache (FOPEN_KEEP_CACHE | FOPEN_CACHE_DIR), and sends
// READDIR(PLUS) with no handle. A walk of a cold tree then costs two round
// trips per directory instead of four, and a warm one none.
//
// The node file system needs a directory handle to list a directory, so a
// READDIR without one opens a handle here. The handle is kept, keyed by
// the directory and the offset the listing reached, for the kernel's next
// READDIR of the same directory, and released when the listing ends (or
// when more than maxStashedDirs directories are being listed at once), so
// that listing a huge directory stays linear.
type cachedDirs struct {
	fuse.RawFileSystem

	mu    sync.Mutex
	stash []stashedDir // most recently used last
}

// maxStashedDirs bounds the directory handles kept between READDIRs.
const maxStashedDirs = 64

// stashedDir is an open directory handle whose listing has reached next.
type stashedDir struct {
	node, fh, next uint64
}

// OpenDir answers ENOSYS: the kernel then stops sending OPENDIR and
// RELEASEDIR and caches every directory's listing.
func (c *cachedDirs) OpenDir(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	return fuse.ENOSYS
}

// ReadDir lists a directory through a handle of its own.
func (c *cachedDirs) ReadDir(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	return c.readDir(cancel, in, out, c.RawFileSystem.ReadDir)
}

// ReadDirPlus lists a directory and looks up its entries through a handle
// of its own.
func (c *cachedDirs) ReadDirPlus(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	return c.readDir(cancel, in, out, c.RawFileSystem.ReadDirPlus)
}

func (c *cachedDirs) readDir(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList,
	read func(<-chan struct{}, *fuse.ReadIn, *fuse.DirEntryList) fuse.Status) fuse.Status {
	if in.Fh != 0 {
		// A handle from before the kernel learnt of ENOSYS.
		return read(cancel, in, out)
	}
	fh, ok := c.take(in.NodeId, in.Offset)
	if !ok {
		var oo fuse.OpenOut
		if st := c.RawFileSystem.OpenDir(cancel, &fuse.OpenIn{InHeader: in.InHeader, Flags: in.Flags}, &oo); !st.Ok() {
			return st
		}
		fh = oo.Fh
	}
	r := *in
	r.Fh = fh
	st := read(cancel, &r, out)
	if st.Ok() && out.Offset != in.Offset {
		c.put(in.NodeId, fh, out.Offset, in.InHeader)
	} else {
		// The end of the listing, or an error: this handle is done.
		c.RawFileSystem.ReleaseDir(&fuse.ReleaseIn{InHeader: in.InHeader, Fh: fh})
	}
	return st
}

// take removes and returns the handle of node whose listing reached off.
func (c *cachedDirs) take(node, off uint64) (uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := len(c.stash) - 1; i >= 0; i-- {
		if s := c.stash[i]; s.node == node && s.next == off {
			c.stash = append(c.stash[:i], c.stash[i+1:]...)
			return s.fh, true
		}
	}
	return 0, false
}

// put keeps a handle for the next READDIR, releasing the least recently
// used one when too many are kept.
func (c *cachedDirs) put(node, fh, next uint64, hdr fuse.InHeader) {
	c.mu.Lock()
	c.stash = append(c.stash, stashedDir{node: node, fh: fh, next: next})
	var old stashedDir
	evict := len(c.stash) > maxStashedDirs
	if evict {
		old = c.stash[0]
		c.stash = append(c.stash[:0], c.stash[1:]...)
	}
	c.mu.Unlock()
	if evict {
		hdr.NodeId = old.node
		c.RawFileSystem.ReleaseDir(&fuse.ReleaseIn{InHeader: hdr, Fh: old.fh})
	}
}
