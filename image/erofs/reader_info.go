package erofs

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sort"
	"time"
)

// Info summarises an image for `closurefs info`.
type Info struct {
	Format     string    `json:"format"` // "erofs"
	Label      string    `json:"label"`
	UUID       string    `json:"uuid"`
	BlockSize  int       `json:"block_size"`
	Blocks     uint64    `json:"blocks"`
	ImageBytes int64     `json:"image_bytes"` // blocks * block size
	Inodes     uint64    `json:"inodes"`
	BuildTime  time.Time `json:"build_time"`
	// Features lists the incompatible (and notable compatible) features
	// in use, as mkfs.erofs and the kernel name them.
	Features []string `json:"features"`
	// Algorithms lists the compression algorithms the image may use.
	Algorithms []string `json:"algorithms"`
	// MaxPclusterBlocks is the largest lz4 pcluster in blocks (lz4 only).
	MaxPclusterBlocks int `json:"max_pcluster_blocks,omitempty"`
	// MinKernel is the oldest Linux version that mounts the image, and
	// MinKernelWhy the feature that needs it.
	MinKernel    string `json:"min_kernel"`
	MinKernelWhy string `json:"min_kernel_reason"`
	RootNid      uint64 `json:"root_nid"`
	PackedNid    uint64 `json:"packed_nid,omitempty"`
}

// rdKernelNeed is the first Linux release that mounts images with a feature.
type rdKernelNeed struct {
	major, minor int
	what         string
}

// Kernel versions from the kernel's history of fs/erofs. EROFS entered
// the kernel in 4.19 (drivers/staging, with lz4); 5.3 added 0padding
// (in-place decompression) and compact indexes, which mkfs.erofs uses
// unless given -Elegacy-compress; fs/erofs left staging in 5.4.
var (
	kernelBase        = rdKernelNeed{4, 19, "erofs (staging; fs/erofs since 5.4)"}
	kernelLZ4         = rdKernelNeed{4, 19, "lz4 without 0padding (staging)"}
	kernelLZ40Padding = rdKernelNeed{5, 3, "lz4 with 0padding and compact indexes"}
	kernelBigPcluster = rdKernelNeed{5, 13, "compr_cfgs/big pclusters"}
	kernelChunked     = rdKernelNeed{5, 15, "chunk-based files"}
	kernelLZMA        = rdKernelNeed{5, 16, "lzma (MicroLZMA)"}
	kernelZtail       = rdKernelNeed{5, 17, "ztailpacking"}
	kernelFragments   = rdKernelNeed{6, 1, "fragments/dedupe"}
	kernelPrefixes    = rdKernelNeed{6, 4, "long xattr name prefixes"}
	kernelDeflate     = rdKernelNeed{6, 6, "deflate"}
	kernelZstd        = rdKernelNeed{6, 10, "zstd"}
	kernel48Bit       = rdKernelNeed{6, 15, "48-bit layout"}
	kernelSmallBlock  = rdKernelNeed{6, 4, "block size other than 4 KiB"}
)

// Info returns a summary of the image.
func (rd *Reader) Info() Info {
	sb := rd.sb
	inf := Info{
		Format:     "erofs",
		Label:      string(bytes.TrimRight(sb.VolumeName[:], "\x00")),
		UUID:       rdFormatUUID(sb.UUID),
		BlockSize:  int(rd.blkSize),
		Blocks:     rd.blocks,
		ImageBytes: int64(rd.blocks) << rd.blkBits,
		Inodes:     sb.Inos,
		BuildTime:  time.Unix(rd.epoch+int64(rd.mkfsTime), int64(rd.fixNsec%1e9)).UTC(),
		RootNid:    rd.rootNid,
		PackedNid:  rd.packedNid(),
	}
	needs := []rdKernelNeed{kernelBase}
	if rd.blkSize != 4096 {
		needs = append(needs, kernelSmallBlock)
	}
	if rd.compat&FeatureCompatSBChecksum != 0 {
		inf.Features = append(inf.Features, "sb_csum")
	}
	for bit := uint32(1); bit != 0 && bit <= FeatureIncompatMetabox; bit <<= 1 {
		if rd.incompat&bit != 0 {
			inf.Features = append(inf.Features, incompatName(bit))
		}
	}
	compressed := rd.incompat&(FeatureIncompatZeroPadding|FeatureIncompatComprCfgs) != 0 || rd.sb.ComprAlgs != 0
	if rd.incompat&FeatureIncompatComprCfgs != 0 {
		needs = append(needs, kernelBigPcluster)
	}
	if rd.incompat&FeatureIncompatChunkedFile != 0 {
		needs = append(needs, kernelChunked)
	}
	if rd.incompat&FeatureIncompatZtailpacking != 0 {
		needs = append(needs, kernelZtail)
	}
	if rd.incompat&FeatureIncompatFragments != 0 {
		needs = append(needs, kernelFragments)
	}
	if rd.incompat&FeatureIncompatXattrPrefixes != 0 {
		needs = append(needs, kernelPrefixes)
	}
	if rd.incompat&FeatureIncompat48Bit != 0 {
		needs = append(needs, kernel48Bit)
	}
	if compressed {
		for alg := 0; alg < algMax; alg++ {
			if rd.algs&(1<<alg) == 0 {
				continue
			}
			inf.Algorithms = append(inf.Algorithms, AlgName(alg))
			switch alg {
			case AlgLZ4:
				needs = append(needs, kernelLZ4)
				if rd.incompat&FeatureIncompatZeroPadding != 0 {
					needs = append(needs, kernelLZ40Padding)
				}
				if c := rd.cfgs[AlgLZ4]; len(c) >= 4 {
					inf.MaxPclusterBlocks = int(binary.LittleEndian.Uint16(c[2:]))
				}
			case AlgLZMA:
				needs = append(needs, kernelLZMA)
			case AlgDeflate:
				needs = append(needs, kernelDeflate)
			case AlgZstd:
				needs = append(needs, kernelZstd)
			}
		}
	}
	sort.SliceStable(needs, func(i, j int) bool {
		if needs[i].major != needs[j].major {
			return needs[i].major > needs[j].major
		}
		return needs[i].minor > needs[j].minor
	})
	inf.MinKernel = fmt.Sprintf("%d.%d", needs[0].major, needs[0].minor)
	inf.MinKernelWhy = needs[0].what
	return inf
}

func rdFormatUUID(u [16]byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}
