package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/closurefs/closurefs/image/erofs"
)

// erofsKind reads EROFS images (magic 0xE0F5E1E2 at byte 1024).
func erofsKind() imageKind {
	magic := binary.LittleEndian.AppendUint32(nil, erofs.Magic)
	return imageKind{
		name:     "erofs",
		magicOff: erofs.SuperOffset,
		magic:    magic,
		open: func(f *os.File) (*openedImage, error) {
			r, err := erofs.Open(f)
			if err != nil {
				return nil, err
			}
			inf := r.Info()
			return &openedImage{FS: r, Info: inf, Summary: func(w io.Writer) { printErofsInfo(w, inf) }}, nil
		},
	}
}

func printErofsInfo(w io.Writer, inf erofs.Info) {
	orNone := func(s []string) string {
		if len(s) == 0 {
			return "none"
		}
		return strings.Join(s, ", ")
	}
	pcl := ""
	if inf.MaxPclusterBlocks > 0 {
		pcl = fmt.Sprintf(" (lz4 pclusters up to %d blocks)", inf.MaxPclusterBlocks)
	}
	fmt.Fprintf(w, "format:          erofs\n")
	fmt.Fprintf(w, "label:           %s\n", inf.Label)
	fmt.Fprintf(w, "uuid:            %s\n", inf.UUID)
	fmt.Fprintf(w, "block size:      %d\n", inf.BlockSize)
	fmt.Fprintf(w, "blocks:          %d (%s)\n", inf.Blocks, humanBytes(inf.ImageBytes))
	fmt.Fprintf(w, "inodes:          %d\n", inf.Inodes)
	fmt.Fprintf(w, "build time:      %d\n", inf.BuildTime.Unix())
	fmt.Fprintf(w, "compression:     %s%s\n", orNone(inf.Algorithms), pcl)
	fmt.Fprintf(w, "features:        %s\n", orNone(inf.Features))
	fmt.Fprintf(w, "min kernel:      Linux %s (%s)\n", inf.MinKernel, inf.MinKernelWhy)
}
