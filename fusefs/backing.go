package fusefs

import (
	"context"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// Kernel FUSE passthrough with backing files kept per node.
//
// go-fuse registers a backing file with the kernel when a node is opened
// and unregisters it when the node's last open file is released, so that
// every open of a file read once and closed costs the daemon four system
// calls (open, register, unregister, close) besides the OPEN and RELEASE
// round trips. The closure view instead registers a store file's backing
// file on its node's first open and keeps it until the kernel forgets the
// node (FORGET, on inode eviction), as virtiofsd keeps a file descriptor
// per inode the kernel knows: opening a file again costs no system call.
//
// go-fuse's node API has no way to return a backing ID, so the view's
// Open leaves it for the raw OPEN handler (passthroughOpens), keyed by the
// request's cancel channel, which is unique among requests in flight.

// mountHook is implemented by roots whose file system must see the raw
// requests or the server (the closure view).
type mountHook interface {
	// wrapRaw wraps the node file system's raw handlers.
	wrapRaw(fuse.RawFileSystem) fuse.RawFileSystem
	// mounted is called with the server before it serves requests.
	mounted(*fuse.Server)
}

// passthroughOpens completes OPEN replies with the backing ID the view's
// Open chose.
type passthroughOpens struct {
	fuse.RawFileSystem
	v *View
}

// Open opens the node and, if the view chose a backing file, asks the
// kernel to read the file through it.
func (p *passthroughOpens) Open(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	st := p.RawFileSystem.Open(cancel, in, out)
	id, ok := p.v.pending.LoadAndDelete(cancel)
	if ok && st.Ok() {
		out.BackingID = id.(int32)
		out.OpenFlags |= fuse.FOPEN_PASSTHROUGH
		out.OpenFlags &^= fuse.FOPEN_KEEP_CACHE
	}
	return st
}

func (r *viewRoot) wrapRaw(raw fuse.RawFileSystem) fuse.RawFileSystem {
	r.v.hooked.Store(true)
	return &passthroughOpens{RawFileSystem: raw, v: r.v}
}

func (r *viewRoot) mounted(srv *fuse.Server) { r.v.server.Store(srv) }

// sharedPT is an open store file whose reads the kernel passes to the
// node's backing file. Reads the kernel sends all the same (had the OPEN
// reply not carried the ID) are served by storeNode.Read.
type sharedPT struct{ n *storeNode }

// Release: the backing file stays registered with the node.
func (f *sharedPT) Release(ctx context.Context) syscall.Errno { return 0 }

// openShared returns a handle for a passthrough open through the node's
// backing file, registering it first if needed. It reports false where
// that is not possible; the caller then opens the file itself.
func (n *storeNode) openShared(ctx context.Context) (gofs.FileHandle, bool) {
	fc, ok := ctx.(*fuse.Context)
	if !ok || fc.Cancel == nil || !n.v.hooked.Load() {
		return nil, false
	}
	id, ok := n.backingID()
	if !ok {
		return nil, false
	}
	n.v.pending.Store(fc.Cancel, id)
	return &sharedPT{n}, true
}

// backingID returns the ID of the node's backing file, registering the
// store file with the kernel on first use.
func (n *storeNode) backingID() (int32, bool) {
	n.bmu.Lock()
	defer n.bmu.Unlock()
	if n.backing != 0 {
		return n.backing, true
	}
	srv := n.v.server.Load()
	if srv == nil {
		return 0, false
	}
	fd, err := syscall.Open(n.path, syscall.O_RDONLY|syscall.O_CLOEXEC|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return 0, false
	}
	// The kernel keeps its own reference to the file.
	id, errno := srv.RegisterBackingFd(&fuse.BackingMap{Fd: int32(fd)})
	syscall.Close(fd)
	if errno != 0 || id == 0 {
		return 0, false
	}
	n.backing = id
	return id, true
}

// OnForget unregisters the node's backing file: the kernel has dropped
// the inode, so no open file uses it.
func (n *storeNode) OnForget() {
	n.bmu.Lock()
	defer n.bmu.Unlock()
	if n.backing == 0 {
		return
	}
	if srv := n.v.server.Load(); srv != nil {
		srv.UnregisterBackingFd(n.backing)
	}
	n.backing = 0
}

var (
	_ mountHook            = (*viewRoot)(nil)
	_ gofs.NodeOnForgetter = (*storeNode)(nil)
	_ gofs.FileReleaser    = (*sharedPT)(nil)
)
