package erofs

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/closurefs/closurefs/image"
	"github.com/closurefs/closurefs/internal/pipeline"
	"golang.org/x/sys/unix"
)

// chunkSize is the unit of work of the data pipeline: files larger than
// this are read (and compressed) in independent segments of this size, so
// memory stays bounded and large files use all workers. Each segment ends
// with a partly filled pcluster: mkfs.erofs's segments are 16 MiB too.
const chunkSize = 16 << 20

// inFlightBytes bounds the input bytes submitted to the pipeline and not
// yet emitted, counted in tokens of tokenBytes (an item takes at most all
// of them).
const (
	inFlightBytes = 32 << 20
	tokenBytes    = 1 << 20
)

// chunk is one unit of work: a segment of a regular file.
type chunk struct {
	in   *inode
	off  int64
	n    int
	last bool
}

// chunkOut is a processed chunk.
type chunkOut struct {
	chunk
	data []byte // uncompressed: the raw bytes; compressed: pcluster bytes
	ext  []extent
	raw  []byte // a whole file's bytes, kept to store it uncompressed if that is smaller
	// sums are the SHA-256 of each extent's pcluster bytes (zero for the
	// file's last extent) when pclusters are deduplicated.
	sums [][sha256.Size]byte
	// slab, on a batch's first chunk, holds the batch's read buffers.
	slab *[]byte
}

// Work items: small files are grouped into batches of about batchBytes
// (at most batchFiles files), so that handing an item to a worker and its
// result to the emitter costs little next to compressing it, and a few
// items in flight keep all workers busy.
const (
	batchBytes = 1 << 20
	batchFiles = 256
)

// slabBytes is the size of the recycled read buffers, which hold a batch
// of small files.
const slabBytes = 2 * batchBytes

// batchDepth is the number of work items in flight per worker.
const batchDepth = 4

// writeData lays out every regular file's and symlink's data in walk
// order, writing full blocks to the data area and keeping inline parts.
func (wr *Writer) writeData(ctx context.Context, h *contentSum) error {
	if wr.comp == nil {
		if err := wr.writeDataPlain(ctx, h); err != nil {
			return err
		}
		return wr.finishData(h)
	}
	jobs := wr.opts.Jobs
	if jobs <= 0 {
		jobs = runtime.GOMAXPROCS(0)
	}
	// Any error cancels ctx, which also stops a submitter waiting for
	// tokens.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	tokens := make(chan struct{}, inFlightBytes/tokenBytes)
	ntokens := func(n int) int { return min((n+tokenBytes-1)/tokenBytes, cap(tokens)) }
	// Read buffers are carved from one slab per batch, recycled once the
	// batch is emitted: the in-flight bound then also bounds allocation.
	var slabs sync.Pool
	one := func(c chunk, buf []byte) (chunkOut, error) {
		out := chunkOut{chunk: c}
		if wr.comp == nil {
			out.data = buf
			return out, nil
		}
		var err error
		if c.off == 0 && c.last {
			out.raw = buf
		}
		out.data, out.ext, err = wr.comp.compressSegment(ctx, buf, c.off, c.last, wr.comp.frags && c.in != wr.packed)
		if err != nil {
			return out, fmt.Errorf("%s: %w", c.in.n.Path(), err)
		}
		if wr.pclusters != nil {
			// Deduplication keys, computed here rather than in the
			// emitter: all but a file's last pcluster (which may be
			// inlined).
			out.sums = make([][sha256.Size]byte, len(out.ext))
			pos := 0
			for i, e := range out.ext {
				if !(c.last && i == len(out.ext)-1) {
					out.sums[i] = sha256.Sum256(out.data[pos : pos+e.csize])
				}
				pos += e.csize
			}
		}
		return out, nil
	}
	work := func(b []chunk) ([]chunkOut, error) {
		outs := make([]chunkOut, len(b))
		total := 0
		for _, c := range b {
			total += c.n
		}
		var slab *[]byte
		// One spare byte after the last chunk: ReadSegment's end probe.
		if total < slabBytes {
			slab, _ = slabs.Get().(*[]byte)
		}
		if slab == nil {
			// Larger batches (a big file's chunk) get their own buffer.
			s := make([]byte, max(total+1, slabBytes))
			slab = &s
		}
		pos := 0
		for i, c := range b {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			// The read may use the next chunk's first byte (not yet
			// read) to see the file's end in the same call; the rest
			// of the writer sees the chunk's bytes only.
			buf := (*slab)[pos : pos+c.n : pos+c.n+1]
			if err := c.in.n.ReadSegment(buf, c.off); err != nil {
				cancel()
				return nil, err
			}
			o, err := one(c, buf[:c.n:c.n])
			if err != nil {
				cancel()
				return nil, err
			}
			pos += c.n
			outs[i] = o
		}
		outs[0].slab = slab
		return outs, nil
	}
	var cur *fileState
	emitOne := func(o chunkOut) error {
		if cur == nil || cur.in != o.in {
			cur = &fileState{in: o.in, start: wr.dataEnd}
		}
		if err := wr.emitChunk(cur, o, h); err != nil {
			return err
		}
		if wr.opts.Progress != nil {
			wr.opts.Progress(int64(o.n))
		}
		if o.last {
			if err := wr.finishFile(cur, h); err != nil {
				return err
			}
			cur = nil
		}
		return nil
	}
	emit := func(outs []chunkOut) error {
		n := 0
		for _, o := range outs {
			if err := emitOne(o); err != nil {
				cancel()
				return err
			}
			n += o.n
		}
		for range ntokens(n) {
			<-tokens
		}
		if len(outs) > 0 && outs[0].slab != nil && cap(*outs[0].slab) == slabBytes {
			// Nothing emitted keeps a reference to the read buffers.
			slabs.Put(outs[0].slab)
		}
		return nil
	}
	var p *pipeline.Ordered[[]chunk, []chunkOut]
	var batch []chunk
	var batchN int
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		for range ntokens(batchN) {
			select {
			case tokens <- struct{}{}:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		err := p.Submit(batch)
		batch, batchN = nil, 0
		return err
	}
	// submitFile queues a file's chunks.
	submitFile := func(in *inode) error {
		// Uncompressed data does not depend on where segments end (they
		// are whole blocks): smaller ones then fit the recycled read
		// buffers, so the write allocates next to nothing.
		seg := int64(chunkSize)
		if wr.comp == nil {
			seg = batchBytes
		}
		for off := int64(0); off < int64(in.size); off += seg {
			l := min(seg, int64(in.size)-off)
			batch = append(batch, chunk{in: in, off: off, n: int(l), last: off+l == int64(in.size)})
			if batchN += int(l); batchN >= batchBytes || len(batch) >= batchFiles {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		return nil
	}
	p = pipeline.NewDepth(ctx, jobs, batchDepth*jobs, work, emit)
	var err error
	for _, in := range wr.inodes {
		if err = ctx.Err(); err != nil {
			break
		}
		n := in.n
		switch {
		case n.IsRegular():
			if wr.dedupOf(in) != nil {
				// Laid out once its original is (below).
				continue
			}
			if in.size == 0 {
				in.layout = LayoutFlatPlain
				in.u = NullAddr
				in.dataDone = true
				continue
			}
			err = submitFile(in)
		}
		if err != nil {
			break
		}
	}
	if err == nil {
		err = flush()
	}
	if cerr := p.Close(); cerr != nil {
		err = cerr // the first error, not the cancel it caused
	}
	if err != nil {
		return err
	}
	if wr.packedSize > 0 {
		// The packed inode: all fragments, compressed as one file.
		n := &image.Node{Name: "packed_file", Mode: 0o644, Size: wr.packedSize, Source: wr.packedFile.Name(), Nlink: 1}
		in := &inode{n: n, ino: uint32(len(wr.inodes) + 1), nlink: 1, mode: unix.S_IFREG | 0o644,
			size: uint64(wr.packedSize), mtime: wr.opts.BuildTime}
		in.extended = in.size > 0xffffffff
		wr.packed = in
		wr.inodes = append(wr.inodes, in)
		progress := wr.opts.Progress
		wr.opts.Progress = nil
		p = pipeline.NewDepth(ctx, jobs, batchDepth*jobs, work, emit)
		err = submitFile(in)
		if err == nil {
			err = flush()
		}
		if cerr := p.Close(); cerr != nil {
			err = cerr
		}
		wr.opts.Progress = progress
		if err != nil {
			return err
		}
	}
	return wr.finishData(h)
}

// finishData lays out the symlinks and the duplicate files, once the
// data of the regular files is written.
func (wr *Writer) finishData(h io.Writer) error {
	for _, in := range wr.inodes {
		if in.n.IsSymlink() {
			if err := wr.layoutSymlink(in, h); err != nil {
				return err
			}
		}
	}
	// Duplicates share the original's data.
	for _, in := range wr.inodes {
		if orig := wr.dedupOf(in); orig != nil {
			n := in.n
			if !orig.dataDone {
				return fmt.Errorf("%s: duplicate of %s whose data is missing", n.Path(), n.Same.Path())
			}
			in.layout, in.u, in.inline, in.tailLen, in.dataDone = orig.layout, orig.u, orig.inline, orig.tailLen, true
			in.spillOff, in.spillLen = orig.spillOff, orig.spillLen
		}
	}
	return nil
}

// dedupOf returns the inode whose data a regular file shares: the first
// file with the same content, when its inode record has the same size (so
// that inline data and compact indexes are valid for both).
func (wr *Writer) dedupOf(in *inode) *inode {
	if in.n == nil || !in.n.IsRegular() || in.n.Same == nil {
		return nil
	}
	orig := wr.byNode[in.n.Same]
	if orig == nil || orig.baseSize() != in.baseSize() {
		return nil
	}
	return orig
}

// fileState tracks a regular file while its chunks are emitted.
type fileState struct {
	in    *inode
	start uint32 // first block of its data
	raw   bool   // stored uncompressed
	tail  []byte // uncompressed: the bytes after the last full block
	ext   []extent
	// pending holds the last extent's pcluster bytes, kept back in case
	// it is inlined (ztailpacking).
	pending []byte
	// shared is set once one of its pclusters is another's.
	shared bool
}

// emitChunk writes a processed chunk's blocks.
func (wr *Writer) emitChunk(fs *fileState, o chunkOut, h io.Writer) error {
	if o.raw != nil && !wr.comp.worthIt(fs.in, o.ext, len(o.raw)) {
		fs.raw = true
		o.data = o.raw
	}
	if wr.comp == nil || fs.raw {
		data := o.data
		if len(fs.tail) > 0 {
			return fmt.Errorf("erofs: internal error: unaligned chunk")
		}
		full := len(data) &^ (wr.blksz - 1)
		if full > 0 {
			if err := wr.writeAt(data[:full], int64(wr.dataEnd)<<wr.blkbits); err != nil {
				return err
			}
			h.Write(data[:full])
			wr.dataEnd += uint32(full >> wr.blkbits)
		}
		fs.tail = append(fs.tail[:0], data[full:]...)
		return nil
	}
	// Compressed: flush the previously pending pcluster, then write all
	// but this chunk's last pcluster.
	if err := wr.flushPending(fs, h); err != nil {
		return err
	}
	// Runs of pclusters that are not duplicates are written at once.
	pos, run := 0, 0
	runAddr := wr.dataEnd
	writeRun := func() error {
		if pos > run {
			if err := wr.writeAt(o.data[run:pos], int64(runAddr)<<wr.blkbits); err != nil {
				return err
			}
			h.Write(o.data[run:pos])
		}
		run, runAddr = pos, wr.dataEnd
		return nil
	}
	for i, e := range o.ext {
		b := o.data[pos : pos+e.csize]
		if i == len(o.ext)-1 && o.last {
			if err := writeRun(); err != nil {
				return err
			}
			fs.pending = b
			fs.ext = append(fs.ext, e)
			pos += e.csize
			run = pos
			continue
		}
		if wr.pclusters != nil {
			k := pclusterKey{o.sums[i], e.plain}
			if addr, ok := wr.pclusters[k]; ok {
				if err := writeRun(); err != nil {
					return err
				}
				e.blkaddr = addr
				fs.shared = true
				wr.incompat |= FeatureIncompatDedupe
				fs.ext = append(fs.ext, e)
				pos += e.csize
				run = pos
				continue
			}
			wr.pclusters[k] = wr.dataEnd
		}
		e.blkaddr = wr.dataEnd
		wr.dataEnd += e.blocks
		pos += e.csize
		fs.ext = append(fs.ext, e)
	}
	return writeRun()
}

// pclusterKey identifies a pcluster's bytes for deduplication.
type pclusterKey struct {
	sum   [sha256.Size]byte
	plain bool
}

// placePcluster writes the pcluster b of extent e at the end of the data
// area, or, when pclusters are deduplicated and an identical one was
// written before, points e at that one (same bytes decompress to the same
// data, whichever file they belong to).
func (wr *Writer) placePcluster(fs *fileState, e *extent, b []byte, h io.Writer) error {
	if wr.pclusters != nil {
		k := pclusterKey{sha256.Sum256(b), e.plain}
		if addr, ok := wr.pclusters[k]; ok {
			e.blkaddr = addr
			fs.shared = true
			wr.incompat |= FeatureIncompatDedupe
			return nil
		}
		wr.pclusters[k] = wr.dataEnd
	}
	e.blkaddr = wr.dataEnd
	if err := wr.writeAt(b, int64(wr.dataEnd)<<wr.blkbits); err != nil {
		return err
	}
	h.Write(b)
	wr.dataEnd += uint32(e.blocks)
	return nil
}

func (wr *Writer) flushPending(fs *fileState, h io.Writer) error {
	if fs.pending == nil {
		return nil
	}
	e := &fs.ext[len(fs.ext)-1]
	b := fs.pending
	if len(b) != int(e.blocks)<<wr.blkbits {
		blk := make([]byte, int(e.blocks)<<wr.blkbits)
		if e.plain {
			copy(blk, b) // plain data sits at the block start
		} else {
			copy(blk[len(blk)-len(b):], b) // compressed data ends the pcluster
		}
		b = blk
	}
	if err := wr.placePcluster(fs, e, b, h); err != nil {
		return err
	}
	fs.pending = nil
	return nil
}

// finishFile decides a regular file's layout once all its data is seen.
func (wr *Writer) finishFile(fs *fileState, h io.Writer) error {
	in := fs.in
	in.dataDone = true
	if wr.comp == nil || fs.raw {
		full := in.size >> wr.blkbits
		in.u = fs.start
		if full == 0 {
			in.u = NullAddr
		}
		tail := fs.tail
		if len(tail) > 0 && in.baseSize()+len(tail) <= wr.blksz {
			in.layout = LayoutFlatInline
			in.tailLen = len(tail)
			return wr.keepInline(in, tail)
		}
		in.layout = LayoutFlatPlain
		if len(tail) > 0 {
			blk := make([]byte, wr.blksz)
			copy(blk, tail)
			h.Write(tail)
			if full == 0 {
				in.u = wr.dataEnd
			}
			if err := wr.writeAt(blk, int64(wr.dataEnd)<<wr.blkbits); err != nil {
				return err
			}
			wr.dataEnd++
		}
		return nil
	}
	return wr.comp.finishCompressed(wr, fs, h)
}

// layoutSymlink stores a symlink's target inline when it fits, else in a
// block of its own.
func (wr *Writer) layoutSymlink(in *inode, h io.Writer) error {
	t := []byte(in.n.Target)
	if in.baseSize()+len(t) <= wr.blksz {
		in.layout = LayoutFlatInline
		in.inline = t
		in.tailLen = len(t)
		in.u = NullAddr
		return nil
	}
	in.layout = LayoutFlatPlain
	nb := (len(t) + wr.blksz - 1) / wr.blksz
	blk := make([]byte, nb*wr.blksz)
	copy(blk, t)
	h.Write(t)
	in.u = wr.dataEnd
	if err := wr.writeAt(blk, int64(wr.dataEnd)<<wr.blkbits); err != nil {
		return err
	}
	wr.dataEnd += uint32(nb)
	return nil
}
