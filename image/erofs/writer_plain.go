package erofs

import (
	"context"
	"fmt"
	"hash/crc32"
	"runtime"

	"github.com/closurefs/closurefs/internal/pipeline"
)

// The data of an uncompressed image does not depend on what is in the
// files, only on their sizes: once identical files are known (image.Tree
// finds them before the writer starts), every file's place in the data
// area is decided up front, and the workers read each file straight into
// its place in a batch of the image (and sum it for the UUID). The single
// emitting goroutine writes each batch with one call and keeps the inline
// tails and the content sums in walk order, so the bytes and the UUID are
// the same for any number of workers.

// plainSeg is the largest piece of a file read at once: big files are
// split so that buffers stay small and all workers share the work.
const plainSeg = 1 << 20

// plainBatch is the image bytes a work item aims at (at most
// plainBatchFiles files); plainSlab is the size of its buffer, which
// holds up to plainBatch-1 bytes, one more segment, its padding to a
// block and one spare byte (ReadSegment's end probe).
const (
	plainBatch      = 1 << 20
	plainBatchFiles = 256
	plainSlab       = plainBatch + plainSeg + 2*65536
)

// plainChunk is a segment of a regular file placed in a batch.
type plainChunk struct {
	in   *inode
	off  int64 // offset in the file
	n    int   // bytes of the file
	rel  int   // offset of its first byte in the batch buffer
	last bool  // the segment ends the file
	// inline: the file's last partial block goes into the metadata
	// area, not the batch.
	inline bool
}

// dataLen is how many of the chunk's bytes go to the data area: all but
// an inline tail (which the metadata area holds, and the content sum
// covers there).
func (c plainChunk) dataLen(blksz int) int {
	if c.inline {
		return c.n &^ (blksz - 1)
	}
	return c.n
}

// plainBatchJob is one work item: consecutive segments that fill the
// image range [pos, pos+size).
type plainBatchJob struct {
	chunks []plainChunk
	pos    int64
	size   int
}

// plainOut is a processed batch.
type plainOut struct {
	job plainBatchJob
	// sums holds the CRC-32C of each contentChunk of each segment's data
	// area bytes (dataLen), in order; a segment's pieces start at its
	// first byte.
	sums []uint32
	// slab holds the batch's image bytes, job.size of them.
	slab *[]byte
	// tails holds the inline tails, in order of the chunks with inline
	// set, one after the other (each chunk's tail is its n minus its
	// dataLen bytes long).
	tails []byte
}

// layoutPlain places every regular file's data in the data area of an
// uncompressed image: full blocks from the file's start block, then its
// last partial block, inline when it fits in the metadata area, else
// padded to a block of its own. It sets layout, u and tailLen, and
// returns the files with data in the data area or inline, in order.
func (wr *Writer) layoutPlain() []*inode {
	var files []*inode
	for _, in := range wr.inodes {
		if !in.n.IsRegular() || wr.dedupOf(in) != nil {
			continue
		}
		if in.size == 0 {
			in.layout, in.u, in.dataDone = LayoutFlatPlain, NullAddr, true
			continue
		}
		full := uint32(in.size >> wr.blkbits)
		tail := int(in.size & uint64(wr.blksz-1))
		in.layout = LayoutFlatPlain
		if tail > 0 && in.baseSize()+tail <= wr.blksz {
			in.layout, in.tailLen = LayoutFlatInline, tail
		}
		blocks := full
		if tail > 0 && in.layout == LayoutFlatPlain {
			blocks++
		}
		in.u = NullAddr
		if blocks > 0 {
			in.u = wr.dataEnd
		}
		wr.dataEnd += blocks
		files = append(files, in)
	}
	return files
}

// writeDataPlain writes the data of an uncompressed image's regular files
// (see layoutPlain) with parallel workers, adding their content to h in
// walk order.
func (wr *Writer) writeDataPlain(ctx context.Context, h *contentSum) error {
	jobs := wr.opts.Jobs
	if jobs <= 0 {
		jobs = runtime.GOMAXPROCS(0)
	}
	start := int64(wr.dataEnd) << wr.blkbits
	files := wr.layoutPlain()
	// Batch buffers are recycled through a free list (not a sync.Pool,
	// which the garbage collector empties: each new buffer is cleared).
	slabs := make(chan *[]byte, (batchDepth+1)*jobs)
	work := func(job plainBatchJob) (plainOut, error) {
		npieces, ntail := 0, 0
		for _, c := range job.chunks {
			d := c.dataLen(wr.blksz)
			npieces += (d + contentChunk - 1) / contentChunk
			ntail += c.n - d
		}
		out := plainOut{job: job, sums: make([]uint32, 0, npieces)}
		if ntail > 0 {
			out.tails = make([]byte, 0, ntail)
		}
		var slab *[]byte
		select {
		case slab = <-slabs:
		default:
			s := make([]byte, plainSlab)
			slab = &s
		}

		buf := *slab
		for _, c := range job.chunks {
			if err := ctx.Err(); err != nil {
				return out, err
			}
			b := buf[c.rel : c.rel+c.n : c.rel+c.n+1]
			if err := c.in.n.ReadSegment(b, c.off); err != nil {
				// Not cancel: an earlier batch would fail with the
				// cancellation, reported first.
				return out, err
			}
			d := b[:c.dataLen(wr.blksz)]
			for p := 0; p < len(d); p += contentChunk {
				out.sums = append(out.sums, crc32.Checksum(d[p:min(p+contentChunk, len(d))], castagnoli))
			}
			if !c.last {
				continue
			}
			full := c.n &^ (wr.blksz - 1)
			if c.inline {
				out.tails = append(out.tails, b[full:]...)
			} else if full < c.n {
				// Pad the last block (the buffer is recycled).
				clear(buf[c.rel+c.n : c.rel+(c.n+wr.blksz-1)&^(wr.blksz-1)])
			}
		}
		out.slab = slab
		return out, nil
	}
	emit := func(o plainOut) error {
		s, t := 0, 0
		for _, c := range o.job.chunks {
			n := c.dataLen(wr.blksz)
			for p := 0; p < n; p += contentChunk {
				h.record(o.sums[s], min(contentChunk, n-p))
				s++
			}
			if c.last {
				c.in.dataDone = true
				if c.inline {
					k := t + c.n - n
					if err := wr.keepInline(c.in, o.tails[t:k]); err != nil {
						return err
					}
					t = k
				}
			}
			if wr.opts.Progress != nil {
				wr.opts.Progress(int64(c.n))
			}
		}
		// One writer: concurrent writes to one file take turns on its
		// inode lock in the kernel, spinning (measured: the writes cost
		// three times the CPU when the workers made them).
		if o.job.size > 0 {
			if err := wr.writeAt((*o.slab)[:o.job.size], o.job.pos); err != nil {
				return err
			}
		}
		select {
		case slabs <- o.slab:
		default:
		}
		return nil
	}
	p := pipeline.NewDepth(ctx, jobs, batchDepth*jobs, work, emit)
	err := wr.submitPlain(ctx, files, start, p.Submit)
	if cerr := p.Close(); cerr != nil {
		err = cerr // the first error, not the cancel it caused
	}
	return err
}

// submitPlain groups the files' segments into batches and submits them.
// The first batch starts at image offset start.
func (wr *Writer) submitPlain(ctx context.Context, files []*inode, start int64, submit func(plainBatchJob) error) error {
	job := plainBatchJob{pos: start}
	rel := 0
	files1 := 0
	flush := func() error {
		if len(job.chunks) == 0 {
			return nil
		}
		job.size = rel
		err := submit(job)
		job = plainBatchJob{pos: job.pos + int64(rel)}
		rel, files1 = 0, 0
		return err
	}
	for _, in := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		if pos := int64(in.u) << wr.blkbits; in.u != NullAddr && pos != job.pos+int64(rel) {
			return fmt.Errorf("erofs: internal error: data of %s at %d, expected %d", in.n.Path(), pos, job.pos+int64(rel))
		}
		inline := in.layout == LayoutFlatInline
		for off := int64(0); off < int64(in.size); off += plainSeg {
			n := int(min(plainSeg, int64(in.size)-off))
			last := off+int64(n) == int64(in.size)
			job.chunks = append(job.chunks, plainChunk{in: in, off: off, n: n, rel: rel, last: last, inline: inline && last})
			switch {
			case !last:
				rel += n
			case inline:
				rel += n &^ (wr.blksz - 1)
			default:
				rel += (n + wr.blksz - 1) &^ (wr.blksz - 1)
			}
			if last {
				files1++
			}
			if rel >= plainBatch || files1 >= plainBatchFiles {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	return flush()
}

// DedupeMin returns the image.Options.DedupeMin that gives the same image
// with opts as searching all files for identical contents, but reads
// fewer files: in an uncompressed image, a file that fits in a block
// with an inode of either size is stored inline, in its own inode, so
// sharing its data saves nothing. Only xattrs could push such a file out
// to a block of its own, which then is not shared. Compressed images get
// 0 (search all files): a small compressed file may take a block.
func DedupeMin(opts Options) int64 {
	if opts.Compressor != "" && opts.Compressor != "none" {
		return 0
	}
	bs := opts.BlockSize
	if bs == 0 {
		bs = DefaultBlockSize
	}
	return int64(bs-ExtendedInodeSize) + 1
}
