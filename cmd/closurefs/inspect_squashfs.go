package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/closurefs/closurefs/image/squashfs"
)

// squashfsKind reads SquashFS 4.0 images ("hsqs" at offset 0).
func squashfsKind() imageKind {
	return imageKind{
		name:     "squashfs",
		magicOff: 0,
		magic:    []byte("hsqs"),
		open: func(f *os.File) (*openedImage, error) {
			r, err := squashfs.Open(f)
			if err != nil {
				return nil, err
			}
			inf := r.Info()
			return &openedImage{FS: r, Info: inf, Summary: func(w io.Writer) { printSquashfsInfo(w, inf) }}, nil
		},
	}
}

func printSquashfsInfo(w io.Writer, inf squashfs.Info) {
	yesNo := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	comp := inf.Compressor
	if o := inf.CompressorOptions; o != "" {
		comp += " (" + o + ")"
	}
	flags := strings.Join(inf.Flags, ", ")
	if flags == "" {
		flags = "none"
	}
	fmt.Fprintf(w, "format:          squashfs %s\n", inf.Version)
	fmt.Fprintf(w, "compressor:      %s\n", comp)
	fmt.Fprintf(w, "block size:      %d\n", inf.BlockSize)
	fmt.Fprintf(w, "bytes used:      %d (%s)\n", inf.BytesUsed, humanBytes(int64(inf.BytesUsed)))
	fmt.Fprintf(w, "inodes:          %d\n", inf.Inodes)
	fmt.Fprintf(w, "fragments:       %d\n", inf.Fragments)
	fmt.Fprintf(w, "ids:             %d\n", inf.IDs)
	fmt.Fprintf(w, "xattr ids:       %d\n", inf.Xattrs)
	fmt.Fprintf(w, "mtime:           %d\n", inf.Mtime)
	fmt.Fprintf(w, "flags:           %s\n", flags)
	fmt.Fprintf(w, "export table:    %s\n", yesNo(inf.ExportTable))
	fmt.Fprintf(w, "xattr table:     %s\n", yesNo(inf.XattrTable))
	fmt.Fprintf(w, "fragment table:  %s\n", yesNo(inf.FragmentTable))
}
